import { Init1764130000000 } from './1764130000000-init';
import { VmCpuFeatures1764150000000 } from './1764150000000-vm-cpu-features';

/** In order. Never edit one that has shipped: add the next. */
export const inventoryMigrations = [Init1764130000000, VmCpuFeatures1764150000000];
