// `testcni`: the CNI plugin when CNI_COMMAND is set, an operator's tool otherwise.
import { commandOf } from '../cni/env.ts';
import { handleCni, readStdinSync } from '../cni/main.ts';
import { writeStdoutOnce } from '../cni/output.ts';
import { Logger } from '../lib/log.ts';

const ABOUT = 'testcni: a CNI plugin for Kubernetes (host-gw bridge mode; CNI spec 0.3.0-1.1.0). Run `testcni --help` for commands.';

async function main(): Promise<number> {
  if (commandOf(process.env) !== null) {
    const log = new Logger();
    const outcome = await handleCni(process.env, readStdinSync, { log });
    writeStdoutOnce(outcome.doc);
    return outcome.exitCode;
  }
  const argv = process.argv.slice(2);
  if (argv.length === 0) {
    // No CNI_COMMAND and no arguments: the protocol's "about" line.
    process.stderr.write(ABOUT + '\n');
    return 0;
  }
  if (argv[0] === 'agent') {
    const { runAgent } = await import('../agent/main.ts');
    return runAgent(argv.slice(1));
  }
  const { runCli } = await import('./commands.ts');
  return runCli(argv);
}

main().then(
  (code) => { process.exitCode = code; },
  (e) => {
    process.stderr.write(`testcni: ${(e as Error)?.stack ?? e}\n`);
    process.exitCode = 1;
  },
);
