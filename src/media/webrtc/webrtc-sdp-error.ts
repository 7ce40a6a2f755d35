/** A remote SDP or candidate this leg cannot use; `stage` tells the element which Kurento error to answer. */
export class WebRtcSdpError extends Error {
  constructor(
    readonly stage: 'parse' | 'process-offer' | 'process-answer' | 'generate-offer' | 'add-candidate',
    message: string,
  ) {
    super(message);
    this.name = 'WebRtcSdpError';
  }
}
