/** `ferry gateway`: placeholder until its issue lands. */
export async function run(_args: string[]): Promise<void> {
  throw new Error('ferry gateway is not built yet');
}
