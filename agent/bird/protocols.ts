// Reads `birdc show protocols all` (BIRD 2 has no machine-readable output) into data: every
// protocol with its summary row, detail fields and channels, and the BGP sessions among them.
// Pure: the text comes from birdc (see birdc.ts) or from a captured file in the tests.

export interface RouteCounts {
  imported: number;
  filtered: number;
  exported: number;
  preferred: number;
}

export interface BirdProtocol {
  name: string;
  proto: string;
  table: string;
  /** BIRD's protocol state: up, start, down, flush, ... */
  state: string;
  /** when the state last changed, as BIRD printed it */
  since: string;
  info: string;
  /** "Key: value" lines outside channel sections (BGP state, Neighbor address, Last error, ...) */
  details: Record<string, string>;
  /** per channel (ipv4, ...): its "Key: value" lines */
  channels: Record<string, Record<string, string>>;
}

export interface BgpSession {
  /** BIRD protocol name, e.g. node_198_18_0_12 */
  name: string;
  peer: string;
  peerAs: number | null;
  localAs: number | null;
  /** BGP state: Established, Active, Connect, Idle, OpenSent, OpenConfirm, Down */
  state: string;
  established: boolean;
  /** when the session state last changed: BIRD's text, and epoch ms when it could be read */
  since: string;
  sinceMs: number | null;
  lastError: string | null;
  /** IPv4 routes of the session */
  routes: RouteCounts;
}

// "Name Proto Table State Since Info": Since is one token with testcni's timeformat
// ("%FT%T%z"); BIRD's own formats ("2024-05-01 12:00:00", "12:00:00.123") are read too.
const ROW = /^(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\d{4}-\d\d-\d\d(?:[T ]\d\d:\d\d:\d\d(?:\.\d+)?)?(?:[+-]\d{4})?|\d\d:\d\d:\d\d(?:\.\d+)?)\s*(.*)$/;
const FIELD = /^\s+([A-Za-z][A-Za-z0-9 /-]*?):\s+(.*?)\s*$/;
const CHANNEL = /^\s+Channel (\S+)\s*$/;

export function parseProtocols(text: string): BirdProtocol[] {
  const out: BirdProtocol[] = [];
  let inTable = false;
  let current: BirdProtocol | null = null;
  let channel: string | null = null;
  for (const line of text.split('\n')) {
    if (!inTable) {
      inTable = /^Name\s+Proto\s+Table\s+State\s+Since\s+Info/.test(line);
      continue;
    }
    if (line.trim() === '') continue;
    if (!/^\s/.test(line)) {
      const m = ROW.exec(line.trimEnd());
      current = m
        ? { name: m[1]!, proto: m[2]!, table: m[3]!, state: m[4]!, since: m[5]!, info: m[6]!.trim(), details: {}, channels: {} }
        : null;
      if (current) out.push(current);
      channel = null;
      continue;
    }
    if (!current) continue;
    const ch = CHANNEL.exec(line);
    if (ch) {
      channel = ch[1]!;
      current.channels[channel] = {};
      continue;
    }
    const f = FIELD.exec(line);
    if (!f) continue;
    // Detail fields come before the first channel; the channel's own follow it.
    const target = channel ? current.channels[channel]! : current.details;
    if (!(f[1]! in target)) target[f[1]!] = f[2]!;
  }
  return out;
}

export function parseRouteCounts(text: string | undefined): RouteCounts {
  const counts: RouteCounts = { imported: 0, filtered: 0, exported: 0, preferred: 0 };
  for (const m of (text ?? '').matchAll(/(\d+) (imported|filtered|exported|preferred)/g)) counts[m[2] as keyof RouteCounts] = Number(m[1]);
  return counts;
}

/** "2026-12-03T09:10:35+0000" (testcni's timeformat) as epoch ms; null for other formats. */
export function parseSince(since: string): number | null {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?)([+-]\d\d)(\d\d)$/.exec(since);
  if (!m) return null;
  const ms = Date.parse(`${m[1]}${m[2]}:${m[3]}`);
  return Number.isNaN(ms) ? null : ms;
}

const asNumber = (v: string | undefined) => (v !== undefined && /^\d+$/.test(v) ? Number(v) : null);

/** The BGP sessions among the protocols, by name. */
export function bgpSessions(protocols: BirdProtocol[]): BgpSession[] {
  return protocols
    .filter((p) => p.proto === 'BGP')
    .map((p) => {
      const state = p.details['BGP state'] ?? (p.state === 'down' ? 'Down' : p.info.split(/\s+/)[0] || 'Unknown');
      return {
        name: p.name,
        peer: p.details['Neighbor address'] ?? '',
        peerAs: asNumber(p.details['Neighbor AS']),
        localAs: asNumber(p.details['Local AS']),
        state,
        established: state === 'Established',
        since: p.since,
        sinceMs: parseSince(p.since),
        lastError: p.details['Last error'] ?? null,
        routes: parseRouteCounts(p.channels['ipv4']?.['Routes']),
      };
    })
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
