// `testcni agent`: the long-running node agent (what the DaemonSet runs).
import { hostname } from 'node:os';
import { Logger } from '../lib/log.ts';
import { loadAgentConfig, AgentConfigError, AGENT_HELP } from './config.ts';
import { Agent } from './agent.ts';

export async function runAgent(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(AGENT_HELP);
    return 0;
  }
  let agent: Agent;
  const log = new Logger();
  try {
    const cfg = loadAgentConfig(argv, hostname());
    log.configure(cfg.logLevel, null);
    log.with({ component: 'agent', node: cfg.nodeName });
    agent = new Agent(cfg, log);
  } catch (e) {
    process.stderr.write(`testcni agent: ${e instanceof AgentConfigError ? e.message : (e as Error).stack}\n`);
    return 2;
  }
  const done = new Promise<number>((resolve) => {
    const stop = (signal: string) => {
      log.info('stopping', { signal });
      void agent.stop().then(() => resolve(0));
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  try {
    await agent.start();
  } catch (e) {
    log.error('agent failed to start', { error: (e as Error).message });
    await agent.stop();
    return 1;
  }
  return done;
}
