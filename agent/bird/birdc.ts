// BIRD's control socket through birdc (processes only through the runner), for callers that
// talk to one BIRD directly (the BGP tests and benchmark): does it answer, and its BGP sessions.
// The agent reaches BIRD through the daemon spec's commands (planner/bird/daemon.ts).
import type { Runner } from '../../executor/runner.ts';
import { tail } from '../../executor/runner.ts';
import { findTool } from '../../executor/facts.ts';
import { bgpSessionsOf, type BgpSession } from '../../planner/bird/protocols.ts';

export class BirdcError extends Error {}

export class Birdc {
  constructor(
    readonly socket: string,
    private readonly runner: Runner,
    private readonly birdc = findTool('birdc'),
    private readonly timeoutMs = 10_000,
  ) {}

  private async run(args: string[]) {
    return this.runner.run([this.birdc, '-s', this.socket, ...args], { timeoutMs: this.timeoutMs });
  }

  /** True when BIRD answers on its socket. */
  async answers(): Promise<boolean> {
    return (await this.run(['show', 'status'])).exitCode === 0;
  }

  async protocolsText(): Promise<string> {
    const r = await this.run(['show', 'protocols', 'all']);
    if (r.exitCode !== 0) throw new BirdcError(`birdc show protocols failed (exit ${r.exitCode}): ${tail(r.stdout + r.stderr)}`);
    return r.stdout;
  }

  async bgpSessions(): Promise<BgpSession[]> {
    return bgpSessionsOf(await this.protocolsText());
  }
}
