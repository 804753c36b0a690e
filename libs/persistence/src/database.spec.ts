import { isUniqueViolation, UNIQUE_VIOLATION } from './database';

describe('isUniqueViolation', () => {
  it('is true only for an error carrying PostgreSQL code 23505', () => {
    expect(isUniqueViolation(Object.assign(new Error('duplicate key'), { code: UNIQUE_VIOLATION }))).toBe(true);
    expect(isUniqueViolation(Object.assign(new Error('no such schema'), { code: '3F000' }))).toBe(false);
    expect(isUniqueViolation(new Error('no code'))).toBe(false);
    expect(isUniqueViolation(undefined)).toBe(false);
    expect(isUniqueViolation(null)).toBe(false);
  });
});
