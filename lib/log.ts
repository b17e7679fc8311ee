// JSON-lines logging to stderr and, when configured, to a 0600 log file. Never stdout.
import { appendFileSync, openSync, closeSync } from 'node:fs';

export type Level = 'debug' | 'info' | 'warn' | 'error';
const RANK: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export class Logger {
  private fields: Record<string, unknown> = {};
  constructor(
    private level: Level = 'info',
    private file: string | null = null,
    private readonly clock: () => Date = () => new Date(),
  ) {}

  configure(level: Level, file: string | null): void {
    this.level = level in RANK ? level : 'info';
    if (file && file !== this.file) {
      // Create with 0600 before the first append: appendFileSync's mode only applies to new files.
      closeSync(openSync(file, 'a', 0o600));
    }
    this.file = file;
  }

  with(fields: Record<string, unknown>): void {
    Object.assign(this.fields, fields);
  }

  log(level: Level, msg: string, extra: Record<string, unknown> = {}): void {
    if (RANK[level] < RANK[this.level]) return;
    const line = JSON.stringify({ ts: this.clock().toISOString(), level, msg, ...this.fields, ...extra }) + '\n';
    process.stderr.write(line);
    if (this.file) {
      try {
        appendFileSync(this.file, line, { mode: 0o600 });
      } catch {
        // A broken log file must not fail the CNI call; stderr still has the line.
      }
    }
  }

  debug(msg: string, extra?: Record<string, unknown>): void { this.log('debug', msg, extra); }
  info(msg: string, extra?: Record<string, unknown>): void { this.log('info', msg, extra); }
  warn(msg: string, extra?: Record<string, unknown>): void { this.log('warn', msg, extra); }
  error(msg: string, extra?: Record<string, unknown>): void { this.log('error', msg, extra); }
}
