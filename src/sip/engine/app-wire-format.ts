import type { Flow } from '../transport/flow';

/**
 * The token layouts drachtio-srf parses (lib/drachtio-agent.js `_onMsg`). Positions
 * matter: srf reads the transaction id and dialog id by index.
 */
export interface WireMeta {
  bytes: number;
  flow: Flow;
  time: string;
}

/** `OK|application|bytes|proto|addr|port|time|txnId|Msg sent:|` — an app request was sent. */
export function requestSentTokens(m: WireMeta, txnId: string): string[] {
  return ['OK', 'application', String(m.bytes), m.flow.protocol, m.flow.remoteAddress, String(m.flow.remotePort), m.time, txnId, 'Msg sent:', ''];
}

/** `OK|application|bytes|proto|addr|port|time|txnId|dialogId||Msg sent:|` — an app response was sent. */
export function responseSentTokens(m: WireMeta, txnId: string, dialogId: string): string[] {
  return ['OK', 'application', String(m.bytes), m.flow.protocol, m.flow.remoteAddress, String(m.flow.remotePort), m.time, txnId, dialogId,
    '', 'Msg sent:', ''];
}

/** `sip|network|bytes|proto|addr|port|time|txnId|dialogId|localAddr|localPort` — a message from the network. */
export function networkSipTokens(m: WireMeta, txnId: string, dialogId: string, localHost: string, localPort: number): string[] {
  return ['sip', 'network', String(m.bytes), m.flow.protocol, m.flow.remoteAddress, String(m.flow.remotePort), m.time, txnId, dialogId,
    localHost, String(localPort)];
}

/** `sip|application|bytes|proto|addr|port|time|unsolicited|dialogId|` — a request the engine sent by itself. */
export function unsolicitedTokens(m: WireMeta, dialogId: string): string[] {
  return ['sip', 'application', String(m.bytes), m.flow.protocol, m.flow.remoteAddress, String(m.flow.remotePort), m.time, 'unsolicited',
    dialogId, ''];
}
