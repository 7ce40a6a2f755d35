import type { MediaElement } from './media-element';
import type { ElementContext } from './object-context';

/**
 * How an element type plugs into ferry media (see the extension API in ./media-element.ts).
 * A module defining an element exports `const elementType: ElementType`.
 */
export interface ElementType {
  /** Kurento type name without the module prefix, e.g. 'RtpEndpoint'. */
  readonly type: string;
  /** `describe` hierarchy: ancestors nearest-first, qualified ('kurento.SdpEndpoint', ...), class excluded. */
  readonly hierarchy: readonly string[];
  /** Every event name the 7.x IDL lists for the class (subscribe accepts exactly these). */
  readonly events: readonly string[];
  /** Build the element. May throw KurentoError (e.g. bad constructor params). */
  create(ctx: ElementContext): MediaElement | Promise<MediaElement>;
}

/** The element types one media server knows, by name (accepts 'X' and 'kurento.X'). */
export class ElementTypeRegistry {
  private readonly types = new Map<string, ElementType>();

  register(t: ElementType): void {
    this.types.set(t.type, t);
  }

  get(name: string): ElementType | undefined {
    return this.types.get(name.startsWith('kurento.') ? name.slice('kurento.'.length) : name);
  }

  names(): string[] {
    return [...this.types.keys()];
  }
}
