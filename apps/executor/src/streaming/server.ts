// The streaming server: CRI Exec, Attach and PortForward hand out a URL with
// a single-use token; the client (the kubelet's proxy, crictl, berthctl)
// connects there and upgrades to SPDY/3.1 or WebSocket. Served by fastify
// (plain requests: 404 for a bad token, 400 without an upgrade) with the
// upgrades taken off its HTTP server. Loopback by default, TLS optional.
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Fastify, { type FastifyInstance } from 'fastify';
import { WebSocketServer, type WebSocket } from 'ws';
import { FailedPreconditionError, InvalidArgumentError, ResourceExhaustedError } from '@berth/errors';
import type { Meter } from '@opentelemetry/api';
import type { criV1 } from '@berth/proto';
import type { Containers } from '../containers.js';
import type { ExecutorContext } from '../context.js';
import { newId, type Pods } from '../pods.js';
import type { Channels, Outcome } from './channels.js';
import { portRefusal } from './portforward.js';
import { runAttach, runExec } from './sessions.js';
import { SpdySession } from './spdy.js';
import { portForwardProtocols, remoteCommandChannels, remoteCommandProtocols, servePortForward, type StdioWanted } from './spdy-streams.js';
import { TokenCache } from './tokens.js';
import { portsOfQuery, wsPortForward, wsRemoteCommandChannels, wsPortForwardProtocols, wsRemoteCommandProtocols } from './websocket.js';

type Pending =
  | ({ kind: 'exec'; containerId: string; cmd: string[] } & StdioWanted)
  | ({ kind: 'attach'; containerId: string } & StdioWanted)
  | { kind: 'portforward'; podId: string; ports: number[] };

const kinds = new Set(['exec', 'attach', 'portforward']);
/** How long a stop waits for cut sessions to clean up after themselves. */
const stopGraceMs = 5000;

export class StreamingServer {
  private readonly tokens: TokenCache<Pending>;
  private readonly active = new Map<string, number>();
  private readonly app: FastifyInstance;
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: 1 << 20, handleProtocols: (offered) => this.pickWsProtocol(offered) });
  private readonly sessions;
  /** Connections taken over by an upgrade (SPDY or WebSocket), which the HTTP server no longer tracks. */
  private readonly upgraded = new Set<Socket>();
  /** The sessions being served, each settled once its process is gone and its cleanup done. */
  private readonly serving = new Set<Promise<void>>();
  private baseUrl = '';

  constructor(
    private readonly ctx: ExecutorContext,
    private readonly containers: Containers,
    private readonly pods: Pods,
    meter: Meter,
  ) {
    const s = ctx.config.streaming;
    this.tokens = new TokenCache(s.tokenTtlSeconds * 1000);
    const tls = s.tlsCertFile !== '' && s.tlsKeyFile !== '' ? { cert: readFileSync(s.tlsCertFile), key: readFileSync(s.tlsKeyFile) } : undefined;
    this.app = Fastify({ logger: false, ...(tls ? { https: tls } : {}) }) as unknown as FastifyInstance;
    this.sessions = meter.createUpDownCounter('berth_streaming_sessions', { description: 'Exec, attach and port-forward connections being served' });
    this.app.all('/:kind/:token', async (req, reply) => {
      const { kind, token } = req.params as { kind: string; token: string };
      if (this.take(kind, token) === undefined) return reply.code(404).send({ error: 'unknown, used or expired streaming token' });
      return reply.code(400).send({ error: 'this URL needs an upgrade to SPDY/3.1 or WebSocket' });
    });
    this.app.server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
      this.upgraded.add(socket);
      socket.once('close', () => this.upgraded.delete(socket));
      const served = this.upgrade(req, socket, head).catch((err: Error) => {
        ctx.logger.warn({ err: err.message }, 'streaming connection failed');
        socket.destroy();
      });
      this.serving.add(served);
      void served.finally(() => this.serving.delete(served));
    });
  }

  async start(): Promise<string> {
    const s = this.ctx.config.streaming;
    await this.app.listen({ host: s.address, port: s.port });
    const { port } = this.app.server.address() as { port: number };
    const host = s.address.includes(':') ? `[${s.address}]` : s.address;
    this.baseUrl = `${s.tlsCertFile && s.tlsKeyFile ? 'https' : 'http'}://${host}:${port}`;
    return this.baseUrl;
  }

  /**
   * Stops serving: every open stream is cut, as if its client had gone (its
   * process killed, its port-forward closed), so that stopping never waits
   * on a client; an HTTP server's close alone waits for upgraded and
   * keep-alive connections to end.
   */
  async stop(): Promise<void> {
    for (const ws of this.wss.clients) ws.terminate();
    for (const socket of this.upgraded) socket.destroy();
    this.app.server.closeAllConnections();
    // Each cut session kills its process and cleans up; wait for that, within a bound.
    const sessionsEnded = Promise.allSettled([...this.serving]);
    await Promise.race([sessionsEnded, sleep(stopGraceMs, undefined, { ref: false })]);
    await this.app.close();
  }

  async exec(r: criV1.ExecRequest): Promise<criV1.ExecResponse> {
    const c = await this.runningContainer(r.containerId);
    if (r.cmd.length === 0) throw new InvalidArgumentError('Exec needs a command');
    checkStdio(r);
    return { url: this.issue({ kind: 'exec', containerId: c.id, cmd: r.cmd, stdin: r.stdin, stdout: r.stdout, stderr: r.stderr, tty: r.tty }, c.id) };
  }

  async attach(r: criV1.AttachRequest): Promise<criV1.AttachResponse> {
    const c = await this.runningContainer(r.containerId);
    checkStdio(r);
    if (r.stdin && !c.stdin) throw new InvalidArgumentError(`container ${c.id} was not created with stdin: there is nothing to attach stdin to`);
    if (r.tty && !c.tty) throw new InvalidArgumentError(`container ${c.id} has no terminal`);
    return { url: this.issue({ kind: 'attach', containerId: c.id, stdin: r.stdin, stdout: r.stdout, stderr: r.stderr && !c.tty, tty: c.tty }, c.id) };
  }

  async portForward(r: criV1.PortForwardRequest): Promise<criV1.PortForwardResponse> {
    const pod = this.pods.get(r.podSandboxId);
    if (!(await this.pods.ready(pod))) throw new FailedPreconditionError(`pod sandbox ${pod.id} is not ready`);
    for (const p of r.port) {
      const refusal = portRefusal(p, []);
      if (refusal !== undefined) throw new InvalidArgumentError(refusal);
    }
    return { url: this.issue({ kind: 'portforward', podId: pod.id, ports: r.port }, pod.id) };
  }

  private async runningContainer(id: string) {
    const c = await this.containers.refresh(this.containers.get(id));
    if (c.state !== 'running') throw new FailedPreconditionError(`container ${c.id} is not running`);
    return c;
  }

  private issue(pending: Pending, owner: string): string {
    const full = this.full(owner);
    if (full !== undefined) throw new ResourceExhaustedError(full);
    return `${this.baseUrl}/${pending.kind}/${this.tokens.issue(pending)}`;
  }

  /** Why `owner` may not have another session, or undefined. */
  private full(owner: string): string | undefined {
    const limit = this.ctx.config.streaming.maxStreamsPerContainer;
    return (this.active.get(owner) ?? 0) >= limit ? `${owner} already has ${limit} streaming sessions` : undefined;
  }

  /** The request a URL's token stands for, taken (a token is good once); undefined for a wrong kind or an unknown, used or expired token. */
  private take(kind: string, token: string): Pending | undefined {
    const pending = kinds.has(kind) ? this.tokens.consume(token) : undefined;
    return pending?.kind === kind ? pending : undefined;
  }

  private pickWsProtocol(offered: Set<string>): string | false {
    for (const p of [...wsRemoteCommandProtocols, ...wsPortForwardProtocols]) if (offered.has(p)) return p;
    return false;
  }

  private async upgrade(req: IncomingMessage, socket: Socket, head: Buffer): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://streaming');
    const [, kind = '', token = ''] = url.pathname.split('/');
    const pending = this.take(kind, token);
    if (pending === undefined) return refuse(socket, 404, 'unknown, used or expired streaming token');
    const owner = pending.kind === 'portforward' ? pending.podId : pending.containerId;
    const full = this.full(owner);
    if (full !== undefined) return refuse(socket, 429, full);
    this.active.set(owner, (this.active.get(owner) ?? 0) + 1);
    this.sessions.add(1, { kind });
    const release = () => {
      const n = (this.active.get(owner) ?? 1) - 1;
      if (n > 0) this.active.set(owner, n);
      else this.active.delete(owner);
      this.sessions.add(-1, { kind });
    };
    socket.once('close', release);
    const upgradeTo = (req.headers.upgrade ?? '').toLowerCase();
    if (upgradeTo === 'websocket') return this.serveWebSocket(req, socket, head, pending, url.searchParams);
    if (upgradeTo === 'spdy/3.1') return this.serveSpdy(req, socket, head, pending);
    return refuse(socket, 400, `cannot upgrade to ${JSON.stringify(req.headers.upgrade ?? '')}: SPDY/3.1 or websocket`);
  }

  private async serveSpdy(req: IncomingMessage, socket: Socket, head: Buffer, pending: Pending): Promise<void> {
    const supported = pending.kind === 'portforward' ? portForwardProtocols : remoteCommandProtocols;
    const offered = headerValues(req, 'x-stream-protocol-version');
    // A client that names no protocol is from before versioning: the oldest one.
    const protocol = offered.length === 0 ? supported.at(-1)! : offered.find((p) => supported.includes(p));
    if (protocol === undefined) {
      return refuse(socket, 403, `unable to upgrade: no common protocol: the client offers ${offered.join(', ')}, Berth speaks ${supported.join(', ')}`, { 'X-Accepted-Stream-Protocol-Versions': supported.join(', ') });
    }
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: ${protocol}\r\n\r\n`);
    this.idle(socket);
    const session = new SpdySession(socket);
    session.on('protocolError', (reason: string) => this.ctx.logger.warn({ reason }, 'SPDY protocol error'));
    if (head.length > 0) socket.unshift(head);
    const timeoutMs = this.ctx.config.streaming.streamCreationTimeoutSeconds * 1000;
    if (pending.kind === 'portforward') return servePortForward(session, this.netnsOf(pending.podId), pending.ports, timeoutMs);
    let channels: Channels;
    try {
      channels = await remoteCommandChannels(session, protocol, pending, timeoutMs);
    } catch (err) {
      this.ctx.logger.warn({ err: (err as Error).message }, 'streaming: client streams missing');
      return session.destroy((err as Error).message);
    }
    await this.run(pending, channels);
  }

  private async serveWebSocket(req: IncomingMessage, socket: Socket, head: Buffer, pending: Pending, query: URLSearchParams): Promise<void> {
    const ws = await new Promise<WebSocket>((resolve) => this.wss.handleUpgrade(req, socket, head, resolve));
    // ws turns the socket's timeout off when it takes the socket over.
    this.idle(socket);
    if (pending.kind === 'portforward') {
      const ports = portsOfQuery(query);
      const refusal = ports.length === 0 ? 'no ports in the query' : ports.map((p) => portRefusal(p, pending.ports)).find((r) => r !== undefined);
      // A close reason holds at most 123 bytes.
      if (refusal !== undefined) return void ws.close(1008, refusal.slice(0, 120));
      return wsPortForward(ws, ports, this.netnsOf(pending.podId));
    }
    if (!wsRemoteCommandProtocols.includes(ws.protocol)) return void ws.close(1002, `exec and attach speak ${wsRemoteCommandProtocols.join(', ')}`);
    await this.run(pending, wsRemoteCommandChannels(ws, pending));
  }

  private async run(pending: Exclude<Pending, { kind: 'portforward' }>, channels: Channels): Promise<void> {
    let outcome: Outcome;
    try {
      const c = await this.runningContainer(pending.containerId);
      if (pending.kind === 'exec') {
        const pod = this.pods.get(c.podId);
        const scratch = join(this.ctx.paths.scratchDir, newId());
        const command = await this.ctx.runtimeFor(pod.runtimeHandler)!.prepareExec(c.id, { ...c.process, args: pending.cmd, terminal: pending.tty }, scratch);
        outcome = await runExec({ command, scratch, tty: pending.tty }, channels);
      } else {
        outcome = await runAttach({ dir: c.dir, tty: c.tty, stdinOnce: c.stdinOnce === true }, channels);
      }
    } catch (err) {
      outcome = { error: (err as Error).message };
    }
    channels.finish(outcome);
  }

  private netnsOf(podId: string): string | undefined {
    const pod = this.pods.get(podId);
    return pod.hostNetwork ? undefined : pod.namespacePaths.net;
  }

  /** A connection with no bytes either way for the idle timeout is closed. */
  private idle(socket: Socket): void {
    socket.setTimeout(this.ctx.config.streaming.idleTimeoutSeconds * 1000, () => socket.destroy());
  }
}

function checkStdio(r: { stdin: boolean; stdout: boolean; stderr: boolean; tty: boolean }): void {
  if (!r.stdin && !r.stdout && !r.stderr) throw new InvalidArgumentError('one of stdin, stdout and stderr must be true');
  if (r.tty && r.stderr) throw new InvalidArgumentError('tty and stderr cannot both be true: a terminal has one output');
}

function headerValues(req: IncomingMessage, name: string): string[] {
  const raw = req.headersDistinct[name] ?? [];
  return raw.flatMap((v) => v.split(',')).map((v) => v.trim()).filter((v) => v !== '');
}

function refuse(socket: Socket, code: number, message: string, headers: Record<string, string> = {}): void {
  const reason = { 400: 'Bad Request', 403: 'Forbidden', 404: 'Not Found', 429: 'Too Many Requests' }[code] ?? 'Error';
  const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  socket.end(`HTTP/1.1 ${code} ${reason}\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(message) + 1}\r\nConnection: close\r\n${extra}\r\n${message}\n`);
}
