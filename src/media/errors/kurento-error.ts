/**
 * The one error type of ferry media's object model. It carries a Kurento error code and the macro name KMS
 * puts in `data.type`; the JSON-RPC layer (src/media/rpc/) turns it into
 * `{"code":..,"message":..,"data":{"type":..}}`. Domain code throws these and never sees JSON-RPC.
 */
export class KurentoError extends Error {
  constructor(
    readonly code: number,
    readonly type: string,
    message: string,
  ) {
    super(message);
    this.name = 'KurentoError';
  }
}

/** The Kurento codes ferry media uses, with their KMS macro names. */
export const KurentoErrors = {
  marshall: (msg: string) => new KurentoError(40001, 'MARSHALL_ERROR', msg),
  unexpected: (msg: string) => new KurentoError(40003, 'UNEXPECTED_ERROR', msg),
  connect: (msg: string) => new KurentoError(40004, 'CONNECT_ERROR', msg),
  unsupportedMediaType: (msg: string) => new KurentoError(40005, 'UNSUPPORTED_MEDIA_TYPE', msg),
  notImplemented: (msg: string) => new KurentoError(40006, 'NOT_IMPLEMENTED', msg),
  invalidSession: () => new KurentoError(40007, 'INVALID_SESSION', 'Invalid session'),
  malformedTransaction: (msg: string) => new KurentoError(40008, 'MALFORMED_TRANSACTION', msg),
  notEnoughResources: (msg: string) => new KurentoError(40009, 'NOT_ENOUGH_RESOURCES', msg),
  typeNotFound: (msg: string) => new KurentoError(40100, 'MEDIA_OBJECT_TYPE_NOT_FOUND', msg),
  objectNotFound: (id: string) => new KurentoError(40101, 'MEDIA_OBJECT_NOT_FOUND', `Object '${id}' not found`),
  constructorNotFound: (msg: string) => new KurentoError(40104, 'MEDIA_OBJECT_CONSTRUCTOR_NOT_FOUND', msg),
  methodNotFound: (msg: string) => new KurentoError(40105, 'MEDIA_OBJECT_METHOD_NOT_FOUND', msg),
  eventNotSupported: (msg: string) => new KurentoError(40106, 'MEDIA_OBJECT_EVENT_NOT_SUPPORTED', msg),
  illegalParam: (msg: string) => new KurentoError(40107, 'MEDIA_OBJECT_ILLEGAL_PARAM_ERROR', msg),
  notAvailable: (msg: string) => new KurentoError(40108, 'MEDIA_OBJECT_NOT_AVAILABLE', msg),
  noCommitTransaction: (msg: string) => new KurentoError(40109, 'MEDIA_OBJECT_NOT_FOUND_TRANSACTION_NO_COMMIT', msg),
  tagKeyNotFound: (key: string) => new KurentoError(40110, 'MEDIA_OBJECT_TAG_KEY_NOT_FOUND', `Tag key '${key}' not found`),
  sdpCreate: (msg: string) => new KurentoError(40200, 'SDP_CREATE_ERROR', msg),
  sdpParse: (msg: string) => new KurentoError(40201, 'SDP_PARSE_ERROR', msg),
  sdpNoLocal: () => new KurentoError(40202, 'SDP_END_POINT_NO_LOCAL_SDP_ERROR', 'No local SDP'),
  sdpNoRemote: () => new KurentoError(40203, 'SDP_END_POINT_NO_REMOTE_SDP_ERROR', 'No remote SDP'),
  sdpGenerateOffer: (msg: string) => new KurentoError(40204, 'SDP_END_POINT_GENERATE_OFFER_ERROR', msg),
  sdpProcessOffer: (msg: string) => new KurentoError(40205, 'SDP_END_POINT_PROCESS_OFFER_ERROR', msg),
  sdpProcessAnswer: (msg: string) => new KurentoError(40206, 'SDP_END_POINT_PROCESS_ANSWER_ERROR', msg),
  sdpAlreadyNegotiated: () =>
    new KurentoError(40208, 'SDP_END_POINT_ALREADY_NEGOTIATED', 'Endpoint already negotiated'),
  sdpNotOfferGenerated: () =>
    new KurentoError(40209, 'SDP_END_POINT_NOT_OFFER_GENERATED', 'Offer not generated. It is not possible to process an answer.'),
  sdpAnswerAlreadyProcessed: () =>
    new KurentoError(40210, 'SDP_END_POINT_ANSWER_ALREADY_PROCCESED', 'Sdp answer already processed'),
  iceGatherCandidates: (msg: string) => new KurentoError(40400, 'ICE_GATHER_CANDIDATES_ERROR', msg),
  iceAddCandidate: (msg: string) => new KurentoError(40401, 'ICE_ADD_CANDIDATE_ERROR', msg),
} as const;
