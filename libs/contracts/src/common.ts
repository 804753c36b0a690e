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
export const IsoTimeSchema = z.string().datetime({ offset: true });
export const NameSchema = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'a name is 1-63 letters, digits, dots, dashes or underscores');
/** CPU vendors; Zhaoxin (CPUID `CentaurHauls` or `  Shanghai  `, also VIA) has no IMC ladder: passthrough only. */
export const VendorSchema = z.enum(['Intel', 'AMD', 'Hygon', 'Zhaoxin']);
export type Vendor = z.infer<typeof VendorSchema>;

export const MemoryMiBSchema = z.number().int().min(1).max(4 * 1024 * 1024);
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
