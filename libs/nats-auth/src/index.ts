export * from './permissions';
export * from './issue';
export * from './tokens';
export * from './auth-dir';
export * from './certificates';
