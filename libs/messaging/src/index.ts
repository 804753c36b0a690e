export * from './nats-bus';
export * from './nats-transport';
export * from './messaging.module';
export * from './trace';
export * from './pages';
