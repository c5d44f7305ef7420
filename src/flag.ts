import { z } from 'zod';

/** A yes/no word, as query strings and settings take it: true/false, or 1/0. */
export const flagSchema = z.enum(['true', 'false', '1', '0']);
export type Flag = z.infer<typeof flagSchema>;

/** Whether a flag (absent: no) says yes. */
export const isSet = (v: Flag | string | undefined): boolean => v === 'true' || v === '1';

/** A setting that is a flag: the word in, a boolean out. */
export const flagSetting = (byDefault: boolean) => flagSchema.default(byDefault ? 'true' : 'false').transform(isSet);
