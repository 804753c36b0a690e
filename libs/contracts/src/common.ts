import { z } from 'zod';

/** Host ids are chosen by the operator (HOST_ID) and become a NATS subject token: keep them simple. */
export const HostIdSchema = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'a host id is 1-63 lowercase letters, digits or dashes, starting with a letter or digit');
/**
 * A host id from a machine's name, e.g. a Kubernetes node name (`ip-10-0-1-2.ec2.internal`), which may hold
 * dots and capitals: lowercase, every character a subject token cannot hold becomes `-`, at most 63.
 */
export function hostIdFromName(name: string): string {
  return name
    .trim()
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+/, '')
    .slice(0, 63)
    .replace(/-+$/, '');
}

export const UuidSchema = z.string().uuid();
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Whether `s` is a UUID as PostgreSQL's `uuid` takes it in canonical form (any case): cheaper than UuidSchema.safeParse. */
export const isUuid = (s: string): boolean => UUID.test(s);
export const IsoTimeSchema = z.string().datetime({ offset: true });

/** The first millisecond `Date#toISOString` writes with a year of more than four digits (10000-01-01). */
const FIVE_DIGIT_YEARS_MS = 253_402_300_800_000;
/** The last two minutes `isoTime` formatted, and their text up to the seconds ("2026-12-03T16:05:"). */
const minutesSeen: { minute: number; prefix: string }[] = [];
const pad2 = (n: number): string => (n < 10 ? `0${n}` : `${n}`);
const pad3 = (n: number): string => (n < 10 ? `00${n}` : n < 100 ? `0${n}` : `${n}`);

/**
 * A time (a Date, or milliseconds since the epoch) as an API shows it: exactly what `toISOString` writes
 * (UTC, milliseconds, "Z"). Made from the text of its minute, which a page's times mostly share,
 * with the seconds and milliseconds appended: `toISOString` took 0.7 µs a time here, 1.4 ms of each page
 * of 1,000 hosts (two times a host), and this about a tenth of it (docs/scale.md, "Times as text").
 */
export function isoTime(time: Date | number): string {
  const ms = typeof time === 'number' ? time : time.getTime();
  const whole = Math.floor(ms);
  if (!(whole >= 0 && whole < FIVE_DIGIT_YEARS_MS)) return new Date(ms).toISOString(); // RangeError for NaN, as toISOString
  const minute = Math.floor(whole / 60_000);
  let seen = minutesSeen[0]?.minute === minute ? minutesSeen[0] : minutesSeen[1]?.minute === minute ? minutesSeen[1] : undefined;
  if (!seen) {
    seen = { minute, prefix: new Date(minute * 60_000).toISOString().slice(0, 17) };
    minutesSeen.unshift(seen);
    minutesSeen.length = Math.min(minutesSeen.length, 2);
  }
  const inMinute = whole - minute * 60_000;
  return `${seen.prefix}${pad2(Math.floor(inMinute / 1000))}.${pad3(inMinute % 1000)}Z`;
}
export const NameSchema = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'a name is 1-63 letters, digits, dots, dashes or underscores');
/** CPU vendors; Zhaoxin (CPUID `CentaurHauls` or `  Shanghai  `, also VIA) has no IMC ladder: passthrough only. */
export const VendorSchema = z.enum(['Intel', 'AMD', 'Hygon', 'Zhaoxin']);
export type Vendor = z.infer<typeof VendorSchema>;

/** The most memory a VM or a host may name: 4 TiB. */
export const MAX_MEMORY_MIB = 4 * 1024 * 1024;
export const MemoryMiBSchema = z.number().int().min(1).max(MAX_MEMORY_MIB);
export const VcpusSchema = z.number().int().min(1).max(1024);

/** A host's CPU as its agent reports it: canonical (libvirt) feature names. */
export const HostCpuSchema = z.object({
  vendor: VendorSchema,
  modelName: z.string(),
  features: z.array(z.string().min(1)),
});
export type HostCpu = z.infer<typeof HostCpuSchema>;

export const DriverSchema = z.enum(['sim', 'qemu']);
export type Driver = z.infer<typeof DriverSchema>;
