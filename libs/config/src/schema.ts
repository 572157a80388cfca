import { z } from 'zod';

const absolutePath = z.string().refine((p) => p.startsWith('/'), 'must be an absolute path');
const port = z.number().int().min(0).max(65535);

/**
 * Berth's configuration: one TOML file (default /etc/berth/config.toml) and
 * environment overrides. Every key has a default, so an empty file is valid.
 * Unknown keys are errors, so a misspelt key never silently does nothing.
 */
export const configSchema = z
  .object({
    /** Where Berth keeps its persistent state: content, snapshots, database. */
    stateDir: absolutePath.default('/var/lib/berth'),
    /** Where Berth keeps runtime state that does not survive a reboot: internal sockets, pid files. */
    runDir: absolutePath.default('/run/berth'),
    /** The CRI socket the kubelet and crictl connect to. */
    socket: absolutePath.default('/run/berth/berth.sock'),
    /** Group that may use the CRI socket (a gid); the socket is root-owned with mode 0660. */
    socketGid: z.number().int().min(0).default(0),
    nats: z
      .object({
        /** An existing NATS server to use; when empty, Berth starts nats-server itself. */
        url: z.string().default(''),
        /** The port of the nats-server Berth starts; 0 picks a free loopback port. */
        port: port.default(0),
        /** The nats-server binary Berth starts. */
        binary: z.string().default('nats-server'),
        /**
         * A file with the user and password this process logs in to NATS with
         * (JSON `{ "user", "password" }`); empty: none. berthd sets it for each
         * service it starts against its own nats-server.
         */
        credentials: z.string().default(''),
      })
      .strict()
      .prefault({}),
    database: z
      .object({
        /** `file:/path.db` for SQLite (the default, under stateDir) or `postgresql://...`. */
        url: z.string().default(''),
      })
      .strict()
      .prefault({}),
    cni: z
      .object({
        confDir: absolutePath.default('/etc/cni/net.d'),
        binDirs: z.array(absolutePath).min(1).default(['/usr/lib/cni', '/opt/cni/bin']),
      })
      .strict()
      .prefault({}),
    image: z
      .object({
        /** How many image-service processes berthd runs; they share pulls through one NATS queue group. */
        replicas: z.number().int().min(1).max(64).default(1),
        /** Layers one pull downloads at once. */
        concurrency: z.number().int().min(1).max(64).default(4),
        /** A download that receives no bytes for this long fails. */
        progressTimeoutSeconds: z.number().positive().max(3600).default(60),
        /** Registry hosts configuration: `<hostsDir>/<registry host>/hosts.toml` lists mirrors (containerd's format). */
        hostsDir: z.string().default('/etc/berth/certs.d'),
        /** Registry hosts (host:port) reached over plain http; loopback hosts always are. */
        insecureRegistries: z.array(z.string()).default([]),
        /** Largest size a layer may decompress to (a decompression bomb stops here). */
        maxLayerBytes: z.number().int().positive().default(64 * 1024 ** 3),
      })
      .strict()
      .prefault({}),
    /** `auto` uses systemd when it is PID 1's init, cgroupfs otherwise. */
    cgroupDriver: z.enum(['auto', 'cgroupfs', 'systemd']).default('auto'),
    /** The OCI runtime binary for the default handler (and the `runc` handler). */
    runtimePath: z.string().default('runc'),
    /** More runtime handlers (the CRI's `runtime_handler`): name → OCI runtime binary. */
    runtimes: z.record(z.string().regex(/^[a-z0-9][a-z0-9_.-]*$/), z.string().min(1)).default({ crun: 'crun' }),
    /** conmon, the per-container monitor. */
    conmonPath: z.string().default('conmon'),
    /** The pod sandbox image: empty for Berth's built-in one, or an image reference. */
    sandboxImage: z.string().default(''),
    /** The streaming server (CRI Exec, Attach, PortForward), served by the executor. */
    streaming: z
      .object({
        /** The address it listens on and puts in the URLs it hands out. Loopback by default: the kubelet proxies to it. */
        address: z.string().default('127.0.0.1'),
        /** Its port; 0 picks a free one at each start. */
        port: port.default(0),
        /** PEM certificate and key: when both are set the server speaks TLS (https URLs). */
        tlsCertFile: z.string().default(''),
        tlsKeyFile: z.string().default(''),
        /** How long a URL stays valid; each is good for one connection. */
        tokenTtlSeconds: z.number().positive().max(3600).default(60),
        /** A stream with no bytes either way for this long is closed. */
        idleTimeoutSeconds: z.number().positive().default(4 * 3600),
        /** How long a SPDY client has to open the streams it asked for. */
        streamCreationTimeoutSeconds: z.number().positive().max(600).default(30),
        /** Concurrent exec and attach sessions per container, and port-forward connections per pod. */
        maxStreamsPerContainer: z.number().int().min(1).max(1024).default(16),
      })
      .strict()
      .prefault({}),
    observability: z
      .object({
        /** Address of each service's /healthz, /readyz and /metrics endpoint. Loopback by default. */
        host: z.string().default('127.0.0.1'),
        /** Ports of those endpoints; 0 picks a free one (as image-service replicas do). */
        ports: z
          .object({
            cri: port.default(10310),
            store: port.default(10311),
            image: port.default(10312),
            executor: port.default(10313),
          })
          .strict()
          .prefault({}),
        /** `none` (default) or `otlp` (OTLP over HTTP to `otlpEndpoint`). */
        tracesExporter: z.enum(['none', 'otlp']).default('none'),
        otlpEndpoint: z.string().default('http://127.0.0.1:4318/v1/traces'),
        logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info'),
      })
      .strict()
      .prefault({}),
  })
  .strict();

export type BerthConfig = z.infer<typeof configSchema>;
