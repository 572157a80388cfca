export { busPermissions, inboxPrefixFor, natsAuthorization, natsLogin, readBusCredentials, writeBusAuth } from './auth.js';
export type { BusAuthFiles, BusCredentials, BusPermissions, BusUser } from './auth.js';
export { Bus } from './bus.js';
export type { BusOptions, EventEnvelope } from './bus.js';
export { eventSubject, imageQueueGroup, requestSubject, subjects } from './subjects.js';
export type { ContainerEvent, EventSubject, ImageServiceInfo, PullAuth, PullImageReply, PullProgress, PullImageRequest, RequestSubject, ServiceStarted } from './subjects.js';
export { diesWithParent, freeLoopbackPort, startNatsServer } from './nats-server.js';
export type { NatsServerHandle, NatsServerOptions } from './nats-server.js';
