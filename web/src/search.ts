// Gene search box with prefix completion from GET genes?prefix&limit (debounced; arrow keys,
// Enter and click pick; stale answers of slower requests are dropped).
import { clear, h } from "./dom";

export interface SearchOptions {
  input: HTMLInputElement;
  list: HTMLUListElement;
  complete: (prefix: string) => Promise<string[]>;
  onPick: (gene: string) => void;
  limit?: number;
}

export function geneSearch(o: SearchOptions): { set: (gene: string) => void } {
  let items: string[] = [];
  let active = -1;
  let ticket = 0;
  let timer: number | undefined;

  const render = (): void => {
    clear(o.list);
    if (items.length === 0) {
      o.list.append(h("li", { class: "none", text: "no gene starts with that" }));
    }
    items.forEach((g, k) => {
      const li = h("li", { role: "option", class: k === active ? "active" : "", "data-gene": g, text: g });
      li.addEventListener("mousedown", (e) => {
        e.preventDefault(); // keep focus so blur does not close the list first
        pick(g);
      });
      o.list.append(li);
    });
    o.list.hidden = false;
  };

  const pick = (g: string): void => {
    // a completion still in flight must not reopen the list over what comes next
    window.clearTimeout(timer);
    ticket++;
    o.input.value = g;
    o.list.hidden = true;
    o.onPick(g);
  };

  const query = async (): Promise<void> => {
    const prefix = o.input.value.trim();
    if (!prefix) {
      o.list.hidden = true;
      return;
    }
    const mine = ++ticket;
    try {
      const got = await o.complete(prefix);
      if (mine !== ticket) return;
      items = got;
      active = items.length > 0 ? 0 : -1;
      render();
    } catch {
      // completion is a convenience; a failed lookup leaves the list closed (errors show on pick)
      if (mine === ticket) o.list.hidden = true;
    }
  };

  o.input.addEventListener("input", () => {
    window.clearTimeout(timer);
    timer = window.setTimeout(() => void query(), 120);
  });
  o.input.addEventListener("focus", () => {
    if (o.input.value.trim()) void query();
  });
  o.input.addEventListener("blur", () => window.setTimeout(() => (o.list.hidden = true), 100));
  o.input.addEventListener("keydown", (e) => {
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      if (items.length === 0) return;
      e.preventDefault();
      active = (active + (e.key === "ArrowDown" ? 1 : -1) + items.length) % items.length;
      render();
    } else if (e.key === "Enter") {
      e.preventDefault();
      const typed = o.input.value.trim();
      // an exact match wins over the highlighted completion
      const exact = items.find((g) => g.toLowerCase() === typed.toLowerCase());
      if (exact) pick(exact);
      else if (active >= 0 && !o.list.hidden) pick(items[active]);
      else if (typed) pick(typed);
    } else if (e.key === "Escape") {
      o.list.hidden = true;
    }
  });

  return {
    set: (gene: string) => {
      o.input.value = gene;
    },
  };
}
