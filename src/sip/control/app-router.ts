import type { AppConnection } from './app-connection';

/** Which connected apps want which request methods; new requests are dealt round-robin per verb. */
export class AppRouter {
  private readonly apps: AppConnection[] = [];
  private readonly cursor = new Map<string, number>();

  add(app: AppConnection): void {
    if (!this.apps.includes(app)) this.apps.push(app);
  }

  remove(app: AppConnection): void {
    const i = this.apps.indexOf(app);
    if (i >= 0) this.apps.splice(i, 1);
  }

  /** The next live, authenticated app that routed `verb` (lower case), or undefined. */
  next(verb: string, exclude?: AppConnection): AppConnection | undefined {
    const v = verb.toLowerCase();
    const candidates = this.apps.filter((a) => a.authenticated && !a.closed && a.routes.has(v) && a !== exclude);
    if (candidates.length === 0) return undefined;
    const i = (this.cursor.get(v) ?? 0) % candidates.length;
    this.cursor.set(v, i + 1);
    return candidates[i];
  }

  /**
   * The next live, authenticated app that routed `verb` and carries `tag` (an outbound-mode web callback's
   * `route` to a tag), or undefined. Round robin shared with `next`.
   */
  nextTagged(verb: string, tag: string): AppConnection | undefined {
    const v = verb.toLowerCase();
    const candidates = this.apps.filter((a) => a.authenticated && !a.closed && a.routes.has(v) && a.tags.includes(tag));
    if (candidates.length === 0) return undefined;
    const i = (this.cursor.get(v) ?? 0) % candidates.length;
    this.cursor.set(v, i + 1);
    return candidates[i];
  }

  find(id: string | undefined): AppConnection | undefined {
    return id === undefined ? undefined : this.apps.find((a) => a.id === id && a.authenticated && !a.closed);
  }

  connected(): AppConnection[] {
    return this.apps.filter((a) => a.authenticated && !a.closed);
  }
}
