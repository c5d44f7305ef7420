import { z } from 'zod';

/** What the reconciler found and mended: after a check, and after restoring Redis from disk. */
export const reconcileReportSchema = z.object({
  agents: z.number(),
  removedPrograms: z.array(z.string()),
  removedHalfCreated: z.array(z.string()),
  releasedPorts: z.array(z.number()),
  removedRoutes: z.array(z.string()),
  conflicts: z.array(z.string()),
  routesChanged: z.array(z.string()),
  skippedBusy: z.array(z.string()).describe('tables left alone because an operation held them; retried on the next check'),
});
export type ReconcileReport = z.infer<typeof reconcileReportSchema>;

export const restoreSchema = reconcileReportSchema.extend({ tokensRestored: z.array(z.string()) });
export type RestoreReport = z.infer<typeof restoreSchema>;
