import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

// The committed catalog.json must be exactly what the generator makes from the reference cpu-map.
// The reference directory sits outside the repository; where it is absent the check is skipped.
const repoRoot = resolve(__dirname, '../../..');
const cpuMapDir = resolve(repoRoot, '../shared/reference/cpu-map');
const hasReference = existsSync(join(cpuMapDir, 'x86_features.xml'));

if (!hasReference) {
  console.log(`cpu-models: reference cpu-map not found at ${cpuMapDir}; catalog regeneration check skipped`);
}

(hasReference ? describe : describe.skip)('catalog generator', () => {
  it('regenerates the committed catalog.json byte for byte', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cpu-catalog-'));
    try {
      const out = join(dir, 'catalog.json');
      execFileSync(process.execPath, [join(repoRoot, 'tools/generate-cpu-catalog.mjs'), cpuMapDir, '--out', out], { stdio: 'pipe' });
      expect(readFileSync(out, 'utf8')).toBe(readFileSync(join(__dirname, 'catalog.json'), 'utf8'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
