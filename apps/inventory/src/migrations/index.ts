import { Init1764130000000 } from './1764130000000-init';

/** In order. Never edit one that has shipped: add the next. */
export const inventoryMigrations = [Init1764130000000];
