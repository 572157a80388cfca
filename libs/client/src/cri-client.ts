import { criV1 } from '@berth/proto';
import { createClient, type PromiseClient } from '@berth/rpc';

export interface CriClient {
  runtime: PromiseClient<typeof criV1.RuntimeServiceService>;
  image: PromiseClient<typeof criV1.ImageServiceService>;
  close(): void;
}

/** The default CRI socket, as berthd serves it. */
export const defaultSocket = '/run/berth/berth.sock';

/**
 * A CRI client over Berth's socket: the one berthctl, the e2e tests and the
 * benchmarks share. `endpoint` is a path or a unix:// URL.
 */
export function connectCri(endpoint: string = defaultSocket, timeoutMs = 30_000): CriClient {
  const address = endpoint.startsWith('unix://') ? endpoint : `unix://${endpoint}`;
  // A CRI client asks once: an absent runtime is reported at once, as crictl does.
  const runtime = createClient(criV1.RuntimeServiceService, address, { timeoutMs, waitForReady: false });
  const image = createClient(criV1.ImageServiceService, address, { timeoutMs, waitForReady: false });
  return {
    runtime,
    image,
    close() {
      runtime.close();
      image.close();
    },
  };
}

/** A CRI ImageSpec naming `image`, with every other field empty. */
export function imageSpec(image: string): criV1.ImageSpec {
  return { image, annotations: {}, userSpecifiedImage: '', runtimeHandler: '', imageRef: '' };
}
