import { type CliIo, main } from '../../src/cli/program.js';

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs the CLI in-process with the environment `env()` gives at call time, capturing what it prints. Every byte
 * goes to `transcript` too, so a test file can check at the end that no secret was ever printed.
 */
export function cliRunner(
  env: () => NodeJS.ProcessEnv,
  transcript: string[],
): (args: string[], io?: CliIo) => Promise<CliRun> {
  return async (args, io = {}) => {
    let stdout = '';
    let stderr = '';
    const code = await main(args, {
      env: env(),
      stdout: (t) => {
        stdout += t;
      },
      stderr: (t) => {
        stderr += t;
      },
      ...io,
    });
    transcript.push(stdout, stderr);
    return { code, stdout, stderr };
  };
}
