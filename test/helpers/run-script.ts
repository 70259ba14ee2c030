import { spawn } from 'node:child_process';
import { processEnv, REPO_ROOT } from './process-helpers';

export interface ScriptResult {
  code: number | NodeJS.Signals;
  stdout: string;
  stderr: string;
}

/**
 * Runs a TypeScript file of the repository to its end as `node --import tsx FILE ARGS` with
 * exactly `env` (see processEnv), and resolves with its exit code and output. A run that
 * outlives `timeoutMs` is killed and rejects with what it printed so far.
 */
export function runScript(file: string, args: string[], env: Record<string, string>, timeoutMs = 60_000): Promise<ScriptResult> {
  const child = spawn(process.execPath, ['--import', 'tsx', file, ...args], {
    cwd: REPO_ROOT,
    env: processEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${file} did not finish within ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? signal!, stdout, stderr });
    });
  });
}
