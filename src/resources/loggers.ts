import { z } from 'zod';

/** log4j2's levels, as an agent's loggers take them. */
export const LOG_LEVELS = ['OFF', 'FATAL', 'ERROR', 'WARN', 'INFO', 'DEBUG', 'TRACE', 'ALL'] as const;
export const logLevelSchema = z.enum(LOG_LEVELS);

/** A logger: "root", or a dotted Java name (a package or class), as the agent's JVM checks it too. */
export const LOGGER_NAME = /^(root|[A-Za-z_$][A-Za-z0-9_$]*(\.[A-Za-z_$][A-Za-z0-9_$]*)*)$/;
export const loggerNameSchema = z.string().max(200).regex(LOGGER_NAME, 'a logger is "root" or a dotted Java name such as org.apache.flume.sink');

/** The levels kept in services/<program>/loggers.json, set by the JVM as it starts. */
export const savedLoggersSchema = z.record(loggerNameSchema, logLevelSchema).refine((m) => Object.keys(m).length <= 50, 'at most 50 saved levels');

export const loggerChangeSchema = z.strictObject({
  level: logLevelSchema.describe('the level from now on, until the agent restarts (unless saved)'),
  save: z.boolean().default(false).describe('true: also kept in the agent\'s files and set at every start'),
});

export const loggersSchema = z.object({
  loggers: z.record(z.string(), z.string()).nullable().describe('every logger the running JVM has a level for ("root" included); null: the agent is not running'),
  saved: z.record(z.string(), z.string()).describe('the levels set at every start'),
});
export type Loggers = z.infer<typeof loggersSchema>;
