// Thin typed client of the spatial_viewer HTTP API (docs/viewer.md). Binary routes return
// little-endian typed arrays; every failure becomes an ApiError carrying the server's reason.

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly route: string,
    reason: string,
  ) {
    super(reason);
  }
}

const API = "api/";

async function reasonOf(r: Response): Promise<string> {
  const text = await r.text();
  try {
    const body = JSON.parse(text) as { detail?: unknown; reason?: unknown; error?: unknown };
    const why = body.detail ?? body.reason ?? body.error;
    if (typeof why === "string") return why;
    if (why !== undefined) return JSON.stringify(why);
  } catch {
    // not JSON: the plain text is the reason
  }
  return text || `${r.status} ${r.statusText}`;
}

async function request(route: string, init?: RequestInit, signal?: AbortSignal): Promise<Response> {
  let r: Response;
  try {
    r = await fetch(API + route, { ...init, signal });
  } catch (e) {
    if ((e as Error).name === "AbortError") throw e;
    throw new ApiError(0, route, "the viewer server does not answer (is spatial_viewer still running?)");
  }
  if (!r.ok) throw new ApiError(r.status, route, await reasonOf(r));
  return r;
}

export async function getJSON<T>(route: string, signal?: AbortSignal): Promise<T> {
  return (await request(route, undefined, signal)).json() as Promise<T>;
}

export async function postJSON<T>(route: string, body: unknown, signal?: AbortSignal): Promise<T> {
  const init = { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) };
  return (await request(route, init, signal)).json() as Promise<T>;
}

async function bytes(route: string, init?: RequestInit, signal?: AbortSignal): Promise<ArrayBuffer> {
  return (await request(route, init, signal)).arrayBuffer();
}

// typed-array views need an aligned buffer; fetch's ArrayBuffer starts at offset 0, so it is
function expectLength(route: string, got: number, want: number | undefined): void {
  if (want !== undefined && got !== want) {
    throw new ApiError(200, route, `expected ${want} values from ${route}, got ${got}`);
  }
}

export async function getF32(route: string, n?: number, signal?: AbortSignal): Promise<Float32Array> {
  const a = new Float32Array(await bytes(route, undefined, signal));
  expectLength(route, a.length, n);
  return a;
}

export async function postF32(route: string, body: unknown, n?: number, signal?: AbortSignal): Promise<Float32Array> {
  const init = { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) };
  const a = new Float32Array(await bytes(route, init, signal));
  expectLength(route, a.length, n);
  return a;
}

export async function getU16(route: string, n?: number): Promise<Uint16Array> {
  const a = new Uint16Array(await bytes(route));
  expectLength(route, a.length, n);
  return a;
}

export async function getU32(route: string, n?: number): Promise<Uint32Array> {
  const a = new Uint32Array(await bytes(route));
  expectLength(route, a.length, n);
  return a;
}

export function q(params: Record<string, string | number>): string {
  return new URLSearchParams(Object.fromEntries(Object.entries(params).map(([k, v]) => [k, String(v)]))).toString();
}
