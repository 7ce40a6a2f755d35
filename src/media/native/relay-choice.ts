import type { MediaRelayKind, MediaRelaySetting } from '../server/media-config';

/** Which relay ferry media runs, and why `auto` fell back to JavaScript when it did. */
export interface RelayChoice {
  relay: MediaRelayKind;
  /** Set when `auto` could not load the native relay: the one-line reason (no compiler, no headers, ...). */
  fallbackReason?: string;
}

/**
 * FERRY_MEDIA_RELAY resolved at start (docs/native-relay.md): `js` as is; `native` loads the addon through
 * `load` (building it on first use) and throws naming the setting when it cannot; `auto` loads it and falls
 * back to `js` with the reason when it cannot, so a machine without a C compiler still runs ferry media.
 */
export function chooseRelay(setting: MediaRelaySetting, load: () => unknown): RelayChoice {
  if (setting === 'js') return { relay: 'js' };
  try {
    load();
    return { relay: 'native' };
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    if (setting === 'native') throw new Error(`FERRY_MEDIA_RELAY=native: ${message}`);
    return { relay: 'js', fallbackReason: message };
  }
}
