import type { ElementType } from './element-type';
import { MediaElement } from './media-element';
import type { ElementContext } from './object-context';

/** `describe` hierarchy of PassThrough (a plain MediaElement in the 7.x IDL). */
const PASS_THROUGH_HIERARCHY: readonly string[] = ['kurento.MediaElement', 'kurento.MediaObject'];

/** The events a MediaElement accepts (the 7.x IDL); PassThrough adds none. */
const MEDIA_ELEMENT_EVENTS: readonly string[] = [
  'Error',
  'ElementConnected',
  'ElementDisconnected',
  'MediaFlowInStateChanged',
  'MediaFlowOutStateChanged',
  'MediaTranscodingStateChanged',
];

/**
 * Kurento's PassThrough: a leg-less element that forwards what its source sends it to every sink,
 * unchanged (each sink still maps the payload type to what it negotiated and rewrites SSRC, sequence and
 * timestamp for its own peer). Connected like any element; MediaFlowIn/Out follow the packets through it.
 * No loop can form: an element has one source per media type, so a cycle of PassThroughs has no way in.
 */
export class PassThrough extends MediaElement {
  constructor(ctx: ElementContext) {
    super(ctx, 'PassThrough');
  }

  override deliverFromPipeline(packet: Buffer, codec: string): void {
    super.deliverFromPipeline(packet, codec); // counts media flowing in; there is no leg to send to
    this.relayToSinks(packet, codec);
  }
}

export const passThroughType: ElementType = {
  type: 'PassThrough',
  hierarchy: PASS_THROUGH_HIERARCHY,
  events: MEDIA_ELEMENT_EVENTS,
  create: (ctx) => new PassThrough(ctx),
};
