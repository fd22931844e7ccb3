// Property-based fuzzing of the checkpoint reader and loadModel (test/fuzz/checkpoint.ts says what
// is generated and checked). A fixed seed; longer runs: npm run fuzz -- --reader checkpoint --runs N.
import t from 'tap';
import { CHECKPOINT_PROPERTIES } from '../fuzz/checkpoint.js';
import { tapProperties } from '../fuzz/tap.js';

tapProperties(t, CHECKPOINT_PROPERTIES);
