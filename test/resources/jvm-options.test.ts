import { describe, expect, it } from 'vitest';
import { XX_FLAGS, jvmOptionProblem, jvmSetProblems, sizeBytes } from '../../src/resources/jvm-options.js';

describe('JVM options by name', () => {
  it('accepts every named flag within its bounds, and the defaults the service itself uses', () => {
    const accepted = [
      '-XX:+UseSerialGC', '-XX:-UseSerialGC', '-XX:+UseParallelGC', '-XX:+UseG1GC', '-XX:MaxGCPauseMillis=200', '-XX:ParallelGCThreads=2',
      '-XX:TieredStopAtLevel=1', '-XX:ReservedCodeCacheSize=32m', '-XX:MaxMetaspaceSize=128m', '-XX:MaxDirectMemorySize=0', '-XX:ActiveProcessorCount=2',
      '-XX:-TieredCompilation', '-Xss512k', '-Xms16m', '-Xmn8m', '-XX:CICompilerCount=2', '-XX:MinHeapFreeRatio=10',
    ];
    expect(accepted.map((o) => [o, jvmOptionProblem(o)]).filter(([, p]) => p !== null)).toEqual([]);
  });

  it('refuses what is not on the list, switches given values, values out of bounds, with a reason', () => {
    expect(jvmOptionProblem('-XX:VMOptionsFile=x')).toMatch(/not an accepted JVM option/);
    expect(jvmOptionProblem('-XX:UseSerialGC')).toMatch(/is a switch/);
    expect(jvmOptionProblem('-XX:+TieredStopAtLevel')).toMatch(/takes a value/);
    expect(jvmOptionProblem('-XX:TieredStopAtLevel=5')).toMatch(/within 0-4/);
    expect(jvmOptionProblem('-XX:ReservedCodeCacheSize=1g')).toMatch(/within 2m-256m/);
    expect(jvmOptionProblem('-Xss16m')).toMatch(/within 128k-8m/);
    expect(jvmOptionProblem('-Xmsfoo')).toMatch(/size must look like/);
    // No accepted option carries a path, a command or a character a command line would read.
    for (const name of Object.keys(XX_FLAGS)) expect(name).toMatch(/^[A-Za-z0-9]+$/);
  });

  it('holds the heap to its ceiling and -Xms/-Xmn within the heap; one collector', () => {
    const limits = { defaultHeap: '256m', maxHeap: '1g' };
    expect(jvmSetProblems({ heap: '2g' }, limits)).toEqual([{ field: 'jvm.heap', message: expect.stringMatching(/above the heap ceiling 1g/) }]);
    expect(jvmSetProblems({ heap: '1g', options: ['-Xms1g', '-Xmn512m'] }, limits)).toEqual([]);
    expect(jvmSetProblems({ options: ['-Xms512m'] }, limits)[0]).toMatchObject({ field: 'jvm.options.0' });
    expect(jvmSetProblems({ heap: '64m', options: ['-Xmn64m'] }, limits)[0]?.message).toMatch(/below the heap/);
    expect(jvmSetProblems({ options: ['-XX:+UseSerialGC', '-XX:+UseG1GC'] }, limits)[0]?.message).toMatch(/one garbage collector/);
    expect(sizeBytes('512k')).toBe(524_288);
    expect(sizeBytes('2G')).toBe(2 * 1024 ** 3);
    expect(sizeBytes('2t')).toBeNull();
  });
});
