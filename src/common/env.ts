/** Reading configuration from the environment with defaults and clear errors. */
export type Env = Record<string, string | undefined>;

export function envString(name: string, fallback: string, env: Env = process.env): string {
  const v = env[name];
  return v === undefined || v === '' ? fallback : v;
}

export function envInt(name: string, fallback: number, env: Env = process.env): number {
  const v = env[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) {
    throw new Error(`environment variable ${name}=${JSON.stringify(v)} is not a non-negative integer`);
  }
  return n;
}

/** The highest TCP/UDP port number; a larger value would be silently wrapped by the socket layer (99999 -> 34463). */
export const MAX_PORT = 65535;

/**
 * A listening port from the environment: an integer 0..65535 (0 = any free port), else an error naming
 * the variable (`FERRY_SIP_PORT=99999 is not a port: use 0..65535 (0 = any free port)`).
 */
export function envPort(name: string, fallback: number, env: Env = process.env): number {
  const v = env[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!/^\d+$/.test(v.trim()) || !Number.isInteger(n) || n > MAX_PORT) {
    throw new Error(`environment variable ${name}=${JSON.stringify(v)} is not a port: use 0..${MAX_PORT} (0 = any free port)`);
  }
  return n;
}

/**
 * A set of limits, each read from its environment variable (`variables`, the default when unset) and each
 * required to be at least 1; `kind` names them in the error (`<kind> <name> must be at least 1 (got 0)`).
 */
export function positiveLimitsFromEnv<T extends { [K in keyof T]: number }>(kind: string, defaults: T, variables: Record<keyof T, string>): T {
  const limits = {} as Record<keyof T, number>;
  for (const name of Object.keys(variables) as (keyof T & string)[]) {
    limits[name] = envInt(variables[name], defaults[name]);
  }
  for (const [name, value] of Object.entries<number>(limits)) {
    if (value < 1) throw new Error(`${kind} ${name} must be at least 1 (got ${value})`);
  }
  return limits as T;
}
