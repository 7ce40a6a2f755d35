/** ferry sip: a SIP engine speaking drachtio-server's control protocol. Entry point for embedding and tests. */
export { startSipEngine, FERRY_SIP_VERSION, type SipEngineOptions, type RunningSipEngine } from './sip-engine-server';
export { FERRY_DIALOG_HEADER } from './engine/sip-engine';
