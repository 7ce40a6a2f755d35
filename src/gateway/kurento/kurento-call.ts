import type { KCallback } from './kurento-types';

/**
 * One kurento-client request in callback form, as a promise that rejects with the request's error.
 * (kurento-client's own promise form prints the error's stack with console.trace and resolves with
 * undefined instead: see KSdpEndpoint in ./kurento-types.ts.)
 */
export function kurentoCall<T>(request: (callback: KCallback<T>) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    request((err, result) => (err ? reject(err) : resolve(result as T)));
  });
}
