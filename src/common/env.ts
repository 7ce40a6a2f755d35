/** Reading configuration from the environment with defaults and clear errors. */
export function envString(name: string, fallback: string): string {
  const v = process.env[name];
  return v === undefined || v === '' ? fallback : v;
}

export function envInt(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) {
    throw new Error(`environment variable ${name}=${JSON.stringify(v)} is not a non-negative integer`);
  }
  return n;
}
