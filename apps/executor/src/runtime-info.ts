import { execFile } from 'node:child_process';

export interface OciRuntimeInfo {
  path: string;
  version: string;
  ready: boolean;
  message: string;
}

/** Runs `<runtime> --version` to learn whether the OCI runtime is there and which it is. */
export function probeOciRuntime(path: string): Promise<OciRuntimeInfo> {
  return new Promise((resolve) => {
    execFile(path, ['--version'], { timeout: 5000 }, (err, stdout) => {
      if (err) resolve({ path, version: '', ready: false, message: `${path} --version failed: ${err.message}` });
      else resolve({ path, version: stdout.split('\n')[0]?.trim() ?? '', ready: true, message: '' });
    });
  });
}
