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
 * A loop of PassThroughs (A -> B -> A) would recurse without end: a packet that comes back to a
 * PassThrough while it is forwarding it is dropped and counted (`/stats` `loopDropped`).
 */
export class PassThrough extends MediaElement {
  private forwarding = false;
  private loopDropped = 0;

  constructor(ctx: ElementContext) {
    super(ctx, 'PassThrough');
  }

  override deliverFromPipeline(packet: Buffer, codec: string): void {
    if (this.forwarding) {
      this.loopDropped++;
      return;
    }
    super.deliverFromPipeline(packet, codec); // counts media flowing in; there is no leg to send to
    this.forwarding = true;
    try {
      this.relayToSinks(packet, codec);
    } finally {
      this.forwarding = false;
    }
  }

  override describeForStats(): Record<string, unknown> {
    return { ...super.describeForStats(), loopDropped: this.loopDropped };
  }
}

export const passThroughType: ElementType = {
  type: 'PassThrough',
  hierarchy: PASS_THROUGH_HIERARCHY,
  events: MEDIA_ELEMENT_EVENTS,
  create: (ctx) => new PassThrough(ctx),
};
