/**
 * Imported first by a test file that runs relay worker scenarios with child processes: every ferry media
 * the file starts afterwards (startMediaServer() reads FERRY_MEDIA_* when called; MediaServerProcess
 * passes this process's environment on) has FERRY_MEDIA_WORKER_KIND=process.
 */
process.env.FERRY_MEDIA_WORKER_KIND = 'process';

export const RELAY_WORKER_KIND_FOR_THIS_FILE = 'process';
