/**
 * Typed NATS subjects. A request subject carries a request and one reply
 * (served by a queue group, so one replica answers); an event subject carries
 * fire-and-forget events to every subscriber. Subjects are path-like:
 * `berth.<service>.<verb>` for requests, `berth.events.<topic>` for events.
 */
export interface RequestSubject<Req, Res> {
  readonly kind: 'request';
  readonly subject: string;
  /** Phantom fields so the payload types travel with the subject. */
  readonly _req?: Req;
  readonly _res?: Res;
}

export interface EventSubject<E> {
  readonly kind: 'event';
  readonly subject: string;
  readonly _event?: E;
}

export function requestSubject<Req, Res>(subject: string): RequestSubject<Req, Res> {
  return { kind: 'request', subject };
}

export function eventSubject<E>(subject: string): EventSubject<E> {
  return { kind: 'event', subject };
}

/** What an image-service replica says about itself. */
export interface ImageServiceInfo {
  version: string;
  pid: number;
  replica: string;
}

/** A service process came up (published once connected). */
export interface ServiceStarted {
  service: string;
  version: string;
  pid: number;
}

/** Credentials for a pull, as the CRI's AuthConfig carries them. */
export interface PullAuth {
  username?: string;
  password?: string;
  auth?: string;
  identityToken?: string;
  registryToken?: string;
}

export interface PullImageRequest {
  image: string;
  auth?: PullAuth;
}

export interface PullImageReply {
  imageId: string;
  repoDigest: string;
  repoTag?: string;
}

/** Progress of one layer of a pull (published at most every 250 ms per layer, and at each phase change). */
export interface PullProgress {
  /** The image as asked for. */
  image: string;
  layer: string;
  /** "waiting", "downloading", "downloaded", "unpacking", "done" or "exists". */
  phase: string;
  bytes: number;
  total: number;
}

/** A lifecycle event of a container or pod sandbox (a sandbox's events carry its id as `containerId`). */
export interface ContainerEvent {
  containerId: string;
  podSandboxId: string;
  type: 'created' | 'started' | 'stopped' | 'deleted';
  /** Nanoseconds since the epoch, as a decimal string. */
  at: string;
  /** The same moment on CLOCK_MONOTONIC (process.hrtime.bigint(), one clock for every process of the node), for ordering the event against other work. */
  mono?: string;
  /** The pod's runtime.v1.PodSandboxStatus at the time of the event, in the protobuf JSON mapping (absent once the pod is deleted). */
  podSandboxStatus?: unknown;
  /** The container's runtime.v1.ContainerStatus at the time of the event, in the protobuf JSON mapping (absent for pod events and once deleted). */
  containerStatus?: unknown;
}

/** Queue group shared by every image-service replica. */
export const imageQueueGroup = 'image';

export const subjects = {
  imageInfo: requestSubject<Record<string, never>, ImageServiceInfo>('berth.image.info'),
  imagePull: requestSubject<PullImageRequest, PullImageReply>('berth.image.pull'),
  serviceStarted: eventSubject<ServiceStarted>('berth.events.service.started'),
  pullProgress: eventSubject<PullProgress>('berth.events.image.progress'),
  containerEvent: eventSubject<ContainerEvent>('berth.events.container'),
} as const;
