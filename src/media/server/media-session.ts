/** What a session needs from the connection bound to it: a way to push a notification. */
export interface SessionConnection {
  readonly connectionId: number;
  sendNotification(method: string, params: Record<string, unknown>): void;
  /** The session this connection is bound to expired (its last object was released). */
  sessionExpired(sessionId: string): void;
}

/**
 * A Kurento session: a UUID, at most one bound connection, the pipelines it
 * owns, and its event subscriptions (they belong to the session, not the socket). No timers: a session
 * lives while it has a connection or owns something, and expires the moment it has neither.
 */
export class MediaSession {
  connection: SessionConnection | undefined;
  /** Pipelines this session owns (created or adopted). */
  readonly pipelines = new Set<string>();
  /** subscription id -> what it subscribes to. */
  readonly subscriptions = new Map<string, { objectId: string; type: string }>();

  constructor(readonly id: string) {}

  get orphaned(): boolean {
    return this.connection === undefined;
  }
}
