import { context, propagation, type TextMapGetter, type TextMapSetter } from '@opentelemetry/api';
import { connect, headers, type MsgHdrs, type NatsConnection, type Subscription } from 'nats';
import { BerthError, DeadlineExceededError, errorCategories, InternalError, UnavailableError, type ErrorCategory } from '@berth/errors';
import type { Logger } from '@berth/observability';
import { natsLogin, type BusCredentials } from './auth.js';
import type { EventSubject, RequestSubject } from './subjects.js';

const headerSetter: TextMapSetter<MsgHdrs> = { set: (carrier, key, value) => carrier.set(key, value) };
const headerGetter: TextMapGetter<MsgHdrs | undefined> = {
  keys: (carrier) => (carrier ? carrier.keys() : []),
  get: (carrier, key) => (carrier?.has(key) ? carrier.get(key) : undefined),
};

/** An event as it travels: the payload plus when and by whom it was published. */
export interface EventEnvelope<E> {
  subject: string;
  source: string;
  at: string;
  payload: E;
}

type ReplyEnvelope<R> = { ok: true; value: R } | { ok: false; error: { category: ErrorCategory; message: string } };

const encoder = new TextEncoder();
const encode = (value: unknown): Uint8Array => encoder.encode(JSON.stringify(value));

export interface BusOptions {
  /** nats:// URL(s), comma separated. */
  url: string;
  /** This process's name, shown by the server and written as `source` on events. */
  name: string;
  logger: Logger;
  /** The user this process logs in as (see writeBusAuth); none for a server without authentication. */
  credentials?: BusCredentials;
}

/**
 * Berth's NATS connection: typed requests and events with JSON payloads and
 * the OpenTelemetry context in the headers. It reconnects for ever; a request
 * made while disconnected fails with `unavailable`.
 */
export class Bus {
  private constructor(
    readonly connection: NatsConnection,
    private readonly name: string,
    private readonly logger: Logger,
  ) {}

  static async connect(options: BusOptions): Promise<Bus> {
    let connection: NatsConnection;
    try {
      connection = await connect({
        servers: options.url.split(','),
        name: options.name,
        ...natsLogin(options.credentials),
        maxReconnectAttempts: -1,
        reconnectTimeWait: 250,
        waitOnFirstConnect: true,
        timeout: 5000,
      });
    } catch (err) {
      throw new UnavailableError(`connect to NATS at ${options.url}`, { cause: err });
    }
    const bus = new Bus(connection, options.name, options.logger);
    void bus.watchStatus();
    return bus;
  }

  private async watchStatus(): Promise<void> {
    for await (const s of this.connection.status()) {
      if (s.type === 'disconnect') this.reconnecting = true;
      if (s.type === 'reconnect') this.reconnecting = false;
      if (s.type === 'disconnect' || s.type === 'reconnect' || s.type === 'error') this.logger.warn({ nats: s.type, data: String(s.data) }, 'nats connection status');
    }
  }

  private reconnecting = false;

  /** True while connected: not reconnecting and not closed. */
  get connected(): boolean {
    return !this.connection.isClosed() && !this.reconnecting;
  }

  /** Sends a request and waits for one reply. Remote errors keep their category. */
  async request<Req, Res>(subject: RequestSubject<Req, Res>, payload: Req, options: { timeoutMs?: number } = {}): Promise<Res> {
    const hdrs = headers();
    propagation.inject(context.active(), hdrs, headerSetter);
    let msg;
    try {
      msg = await this.connection.request(subject.subject, encode(payload), { timeout: options.timeoutMs ?? 30_000, headers: hdrs });
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === '503') throw new UnavailableError(`no service answers ${subject.subject}`, { cause: err });
      if (code === 'TIMEOUT') throw new DeadlineExceededError(`${subject.subject}: no reply in time`, { cause: err });
      throw new UnavailableError(`request ${subject.subject}`, { cause: err });
    }
    const reply = msg.json<ReplyEnvelope<Res>>();
    if (reply.ok) return reply.value;
    const category = errorCategories.includes(reply.error.category) ? reply.error.category : 'internal';
    throw new BerthError(category, reply.error.message);
  }

  /**
   * Answers requests on `subject`. With `queue`, each request goes to one
   * member of the group. A handler's BerthError reaches the requester with its
   * category; any other error is reported as internal and logged here.
   */
  serve<Req, Res>(subject: RequestSubject<Req, Res>, handler: (payload: Req) => Promise<Res>, options: { queue?: string } = {}): Subscription {
    return this.connection.subscribe(subject.subject, {
      ...(options.queue === undefined ? {} : { queue: options.queue }),
      callback: (err, msg) => {
        if (err) {
          this.logger.error({ err, subject: subject.subject }, 'subscription failed');
          return;
        }
        const parent = propagation.extract(context.active(), msg.headers, headerGetter);
        void context.with(parent, async () => {
          let reply: ReplyEnvelope<Res>;
          try {
            reply = { ok: true, value: await handler(msg.json<Req>()) };
          } catch (e) {
            if (!(e instanceof BerthError)) this.logger.error({ err: e, subject: subject.subject }, 'request handler failed');
            const be = e instanceof BerthError ? e : new InternalError('internal error');
            reply = { ok: false, error: { category: be.category, message: be.message } };
          }
          msg.respond(encode(reply));
        });
      },
    });
  }

  /** Publishes an event to every subscriber; returns once handed to the connection. */
  publish<E>(subject: EventSubject<E>, payload: E): void {
    const hdrs = headers();
    propagation.inject(context.active(), hdrs, headerSetter);
    const envelope: EventEnvelope<E> = { subject: subject.subject, source: this.name, at: new Date().toISOString(), payload };
    this.connection.publish(subject.subject, encode(envelope), { headers: hdrs });
  }

  /** Calls `handler` for each event on `subject` (wildcards allowed in the subject string). */
  subscribe<E>(subject: EventSubject<E>, handler: (event: EventEnvelope<E>) => void): Subscription {
    return this.connection.subscribe(subject.subject, {
      callback: (err, msg) => {
        if (err) return;
        try {
          handler(msg.json<EventEnvelope<E>>());
        } catch (e) {
          this.logger.error({ err: e, subject: subject.subject }, 'event handler failed');
        }
      },
    });
  }

  async close(): Promise<void> {
    if (!this.connection.isClosed()) await this.connection.drain().catch(() => this.connection.close());
  }
}
