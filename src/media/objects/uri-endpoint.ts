import { KurentoErrors } from '../errors/kurento-error';
import type { MediaFilesConfig } from '../media-files/media-files-config';
import { resolveMediaUri, type MediaLocation } from '../media-files/media-uri';
import { MediaElement } from './media-element';
import { optionalString, type OperationParams } from './media-object';
import type { ElementContext } from './object-context';

export type UriEndpointState = 'STOP' | 'START' | 'PAUSE';

/** `describe` hierarchy of PlayerEndpoint and RecorderEndpoint (nearest ancestor first). */
export const URI_ENDPOINT_HIERARCHY: readonly string[] = ['kurento.UriEndpoint', 'kurento.Endpoint', 'kurento.MediaElement', 'kurento.MediaObject'];

/** Events every UriEndpoint accepts (the 7.x IDL); subclasses append their own. */
export const URI_ENDPOINT_EVENTS: readonly string[] = [
  'Error',
  'ElementConnected',
  'ElementDisconnected',
  'MediaFlowInStateChanged',
  'MediaFlowOutStateChanged',
  'MediaTranscodingStateChanged',
  'UriEndpointStateChanged',
];

/**
 * Kurento's UriEndpoint: an element whose media is a file or URL named by the `uri` constructor
 * parameter (checked at create, media-uri.ts), with the STOP/START/PAUSE state (`getState`,
 * `UriEndpointStateChanged`), `getUri`, `pause` and `stop`. Subclasses implement the state moves.
 */
export abstract class UriEndpoint extends MediaElement {
  protected readonly uri: string;
  protected readonly location: MediaLocation;
  protected readonly files: MediaFilesConfig;
  protected state: UriEndpointState = 'STOP';

  constructor(ctx: ElementContext, type: string, allowHttp: boolean) {
    super(ctx, type);
    const uri = optionalString(ctx.constructorParams, 'uri');
    if (uri === undefined) throw KurentoErrors.marshall(`'uri' constructor parameter is required by ${type}`);
    this.uri = uri;
    this.files = ctx.config.mediaFiles;
    this.location = resolveMediaUri(uri, this.files.dir, allowHttp);
  }

  protected setState(state: UriEndpointState): void {
    if (this.state === state) return;
    this.state = state;
    this.emitEvent('UriEndpointStateChanged', { state });
  }

  protected abstract pauseMedia(): Promise<void>;
  protected abstract stopMedia(): Promise<void>;

  override async invoke(operation: string, params: OperationParams): Promise<unknown> {
    switch (operation) {
      case 'getUri':
        return this.uri;
      case 'getState':
        return this.state;
      case 'pause':
        await this.pauseMedia();
        return null;
      case 'stop':
        await this.stopMedia();
        return null;
      default:
        return super.invoke(operation, params);
    }
  }

  override describeForStats(): Record<string, unknown> {
    return { ...super.describeForStats(), uriState: this.state, media: this.location.kind };
  }
}
