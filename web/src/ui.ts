// Page-level feedback: toasts for errors and results, the top-bar status, the canvas loading veil,
// and progress bars. Errors are shown in the page (never only in the console).
import { ApiError } from "./api";
import { byId, clear, h } from "./dom";

export function toast(message: string, kind: "error" | "ok" | "info" = "info", ms = 7000): void {
  const close = h("button", { class: "x", title: "Dismiss", text: "✕" });
  const el = h("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status" }, h("span", { text: message }), close);
  close.addEventListener("click", () => el.remove());
  byId("toasts").append(el);
  if (ms > 0) window.setTimeout(() => el.remove(), kind === "error" ? ms * 2 : ms);
}

/** One readable line for any failure; AbortError (user cancelled) returns null. */
export function describe(e: unknown): string | null {
  if (e instanceof DOMException && e.name === "AbortError") return null;
  if (e instanceof ApiError) return e.message;
  if (e instanceof Error) return e.message;
  return String(e);
}

export function reportError(context: string, e: unknown): void {
  const why = describe(e);
  if (why !== null) toast(`${context}: ${why}`, "error");
}

export function setStatus(text: string, busy = false): void {
  const el = byId("status");
  clear(el, h("span", { class: `dot${busy ? " busy" : ""}` }), h("span", { text }));
}

export function setLoading(message: string | null): void {
  const el = byId("loading");
  el.classList.toggle("hide", message === null);
  if (message !== null) byId("loading-msg").textContent = message;
}

export function setProgress(el: HTMLElement, percent: number | null | undefined, message: string): void {
  el.hidden = false;
  el.classList.toggle("indeterminate", percent === null || percent === undefined);
  const bar = el.querySelector<HTMLElement>(".bar");
  if (bar && percent !== null && percent !== undefined) bar.style.width = `${Math.max(0, Math.min(100, percent))}%`;
  const msg = el.querySelector<HTMLElement>(".msg");
  if (msg) msg.textContent = message;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => window.setTimeout(r, ms));
