// BIRD's control socket through birdc (processes only through the runner): reconfigure, and the
// BGP sessions for `testcni status` and the agent's metrics.
import type { Runner } from '../../executor/runner.ts';
import { tail } from '../../executor/runner.ts';
import { findTool } from '../../executor/facts.ts';
import { parseProtocols, bgpSessions, type BgpSession } from './protocols.ts';

export class BirdcError extends Error {}

// Reply codes (BIRD's doc/reply_codes): 0003 reconfigured, 0004 reconfiguration in progress,
// 0005 queued behind one in progress, 0025 graceful restart requested. 8xxx and 9xxx are errors.
const CONFIGURED = /^000[345][ -]/m;

export class Birdc {
  constructor(
    readonly socket: string,
    private readonly runner: Runner,
    private readonly birdc = findTool('birdc'),
    private readonly timeoutMs = 10_000,
  ) {}

  private async run(args: string[], verbose = false) {
    return this.runner.run([this.birdc, ...(verbose ? ['-v'] : []), '-s', this.socket, ...args], { timeoutMs: this.timeoutMs });
  }

  /** True when BIRD answers on its socket. */
  async answers(): Promise<boolean> {
    return (await this.run(['show', 'status'])).exitCode === 0;
  }

  /** Makes BIRD re-read the configuration file it was started with. */
  async configure(): Promise<void> {
    const r = await this.run(['configure'], true);
    if (r.exitCode !== 0 || !CONFIGURED.test(r.stdout)) {
      throw new BirdcError(`birdc configure failed (exit ${r.exitCode}): ${tail(r.stdout + r.stderr)}`);
    }
  }

  /** Exports a protocol's routes again (e.g. the kernel's, once the tunnel device exists). */
  async reloadOut(protocol: string): Promise<void> {
    const r = await this.run(['reload', 'out', protocol], true);
    if (r.exitCode !== 0) throw new BirdcError(`birdc reload out ${protocol} failed (exit ${r.exitCode}): ${tail(r.stdout + r.stderr)}`);
  }

  /** Asks BIRD to shut down for graceful restart (peers keep its routes); true when it agreed. */
  async gracefulRestart(): Promise<boolean> {
    const r = await this.run(['graceful', 'restart'], true);
    return r.exitCode === 0 && /^0025[ -]/m.test(r.stdout);
  }

  async protocolsText(): Promise<string> {
    const r = await this.run(['show', 'protocols', 'all']);
    if (r.exitCode !== 0) throw new BirdcError(`birdc show protocols failed (exit ${r.exitCode}): ${tail(r.stdout + r.stderr)}`);
    return r.stdout;
  }

  async bgpSessions(): Promise<BgpSession[]> {
    return bgpSessions(parseProtocols(await this.protocolsText()));
  }
}
