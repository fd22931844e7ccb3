// Property-based fuzzing of the calibration readers: ShareGPT4V JSON and JSONL sets
// (test/fuzz/calibration.ts) and calibration bundles (test/fuzz/bundle.ts). A fixed seed; longer
// runs: npm run fuzz -- --reader calibration --runs N.
import t from 'tap';
import { BUNDLE_PROPERTIES } from '../fuzz/bundle.js';
import { CALIBRATION_SET_PROPERTIES } from '../fuzz/calibration.js';
import { tapProperties } from '../fuzz/tap.js';

tapProperties(t, [...CALIBRATION_SET_PROPERTIES, ...BUNDLE_PROPERTIES]);
