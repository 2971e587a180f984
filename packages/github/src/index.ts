export const platform = 'github' as const;
