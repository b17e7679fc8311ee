// BIRD as a node daemon (pure): the commands the agent's daemon supervisor runs for it. One BIRD
// per node, with its own configuration, control socket and PID file.
import { CONFIG_PATH_ARG, type DaemonSpec } from '../../model/daemon.ts';
import { KERNEL_PROTOCOL, type BirdView } from './view.ts';

export interface BirdPaths {
  config: string;
  socket: string;
  pidFile: string;
  /** BIRD's stdout and stderr (its `log stderr`) */
  logFile: string;
}

export interface BirdTools {
  bird: string;
  birdc: string;
}

/** The template BIRD's configuration is rendered from (templates/bird.conf.hbs). */
export const BIRD_TEMPLATE = 'bird.conf';

// birdc reply codes (BIRD's doc/reply_codes): 0003 reconfigured, 0004 reconfiguration in
// progress, 0005 queued behind one in progress; 0015 reloading; 0025 graceful restart requested.
const CONFIGURED = '^000[345][ -]';
const RELOADING = '^0015[ -]';
const GRACEFUL = '^0025[ -]';

/**
 * BIRD run in the foreground (-f) by the agent: `bird -p` checks a candidate configuration,
 * `birdc configure` takes a new one, `birdc reload out kernel4` installs the learned routes again
 * once the tunnel device exists (BIRD drops a route whose device is missing and never retries
 * it), `birdc graceful restart` stops it so that peers keep its routes until it is back, and a
 * restarted BIRD starts with -R (graceful restart recovery: it keeps the kernel's routes until
 * its sessions are back). `view`: the configuration (null: a supervisor that is given the text).
 */
export function birdDaemon(paths: BirdPaths, tools: BirdTools, view: BirdView | null, recover = false): DaemonSpec {
  const birdc = (...args: string[]) => [tools.birdc, '-v', '-s', paths.socket, ...args];
  return {
    name: 'bird',
    argv: [tools.bird, '-f', '-c', paths.config, '-s', paths.socket, '-P', paths.pidFile],
    recoverArgs: ['-R'],
    recover,
    config: {
      path: paths.config,
      template: BIRD_TEMPLATE,
      view,
      mode: view && view.secrets.length > 0 ? 0o600 : 0o644,
      secrets: view?.secrets ?? [],
    },
    validate: [tools.bird, '-p', '-c', CONFIG_PATH_ARG],
    ready: [tools.birdc, '-s', paths.socket, 'show', 'status'],
    reload: { argv: birdc('configure'), expectStdout: CONFIGURED },
    refresh: { argv: birdc('reload', 'out', KERNEL_PROTOCOL), expectStdout: RELOADING },
    gracefulStop: { argv: birdc('graceful', 'restart'), expectStdout: GRACEFUL },
    pidFile: paths.pidFile,
    logFile: paths.logFile,
    status: { argv: [tools.birdc, '-s', paths.socket, 'show', 'protocols', 'all'] },
  };
}
