// A pause image made offline for the runtime tests (no registry is reachable): pause.c built
// static with gcc, packed as a one-layer OCI image layout in a tar archive, which
// `ctr images import` takes as it is.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync, copyFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, sh } from './netns.ts';

export const PAUSE_REF = 'testcni.local/pause:test';
const PAUSE_SOURCE = join(ROOT, 'test', 'helpers', 'pause.c');

/** The tools building the image needs, by name. */
export const IMAGE_TOOLS = ['gcc', 'tar'];

/** Why a static pause binary cannot be built here, or null. */
export function pauseImageSkipReason(): string | null {
  if (!existsSync('/usr/lib/x86_64-linux-gnu/libc.a') && !existsSync('/usr/lib/aarch64-linux-gnu/libc.a')) {
    return 'needs a static libc to build the pause image (Debian: libc6-dev)';
  }
  return null;
}

export interface PauseImage {
  archive: string;
  ref: string;
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A tar of `files` (paths relative to `dir`) with fixed owners and times, so digests are stable. */
function tar(dir: string, out: string, files: string[]): void {
  sh(['tar', '--sort=name', '--owner=0', '--group=0', '--numeric-owner', '--mtime=@0', '-cf', out, '-C', dir, ...files]);
}

function goArch(): string {
  return process.arch === 'x64' ? 'amd64' : process.arch === 'arm64' ? 'arm64' : process.arch;
}

/** Builds the pause image archive under `dir` (created if needed). */
export function buildPauseImage(dir: string): PauseImage {
  const rootfs = join(dir, 'rootfs');
  const layout = join(dir, 'layout');
  const blobs = join(layout, 'blobs', 'sha256');
  mkdirSync(rootfs, { recursive: true });
  mkdirSync(blobs, { recursive: true });
  copyFileSync(PAUSE_SOURCE, join(dir, 'pause.c'));
  sh(['gcc', '-static', '-Os', '-s', '-o', join(rootfs, 'pause'), join(dir, 'pause.c')]);

  const layerTar = join(dir, 'layer.tar');
  tar(rootfs, layerTar, ['pause']);
  const layer = readFileSync(layerTar);
  const config = Buffer.from(JSON.stringify({
    architecture: goArch(),
    os: 'linux',
    config: { Entrypoint: ['/pause'], WorkingDir: '/' },
    rootfs: { type: 'layers', diff_ids: [`sha256:${sha256(layer)}`] },
  }));
  const descriptor = (mediaType: string, b: Buffer) => ({ mediaType, digest: `sha256:${sha256(b)}`, size: b.length });
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: descriptor('application/vnd.oci.image.config.v1+json', config),
    layers: [descriptor('application/vnd.oci.image.layer.v1.tar', layer)],
  }));
  for (const b of [layer, config, manifest]) writeFileSync(join(blobs, sha256(b)), b);
  writeFileSync(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(join(layout, 'index.json'), JSON.stringify({
    schemaVersion: 2,
    manifests: [{
      ...descriptor('application/vnd.oci.image.manifest.v1+json', manifest),
      platform: { architecture: goArch(), os: 'linux' },
      // containerd names the imported image after this annotation
      annotations: { 'io.containerd.image.name': PAUSE_REF, 'org.opencontainers.image.ref.name': 'test' },
    }],
  }));
  const archive = join(dir, 'pause.tar');
  tar(layout, archive, ['oci-layout', 'index.json', 'blobs']);
  return { archive, ref: PAUSE_REF };
}
