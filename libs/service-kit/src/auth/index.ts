export * from './roles';
export * from './auth-settings';
export * from './token-verifier';
export * from './auth.guard';
export * from './routes';
