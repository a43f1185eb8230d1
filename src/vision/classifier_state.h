#pragma once
// Where a classifier's training stands after an epoch, kept beside the model so that a killed run
// continues (moe fit --resume) as if it had never stopped.
//
// DIR/trainer_state-E.safetensors, E the epochs done: AdamW's moments ("adam.m.<param>",
// "adam.v.<param>") and, as metadata, the step, the training seconds so far, the settings the run
// was started with and a fingerprint of its training images. The model's own file names E too
// (metadata "epoch"): the state is written first and older states are removed after the model, so
// a crash between the writes leaves a model whose state is still there.
#include <cstdint>
#include <string>

#include "train/adamw.h"
#include "vision/image_set.h"

namespace moe::vision {

struct ClassifierTrainConfig;

struct ClassifierState {
  int epochs_done = 0;
  int64_t steps = 0;
  double seconds = 0;  // of training, over every run so far
};

// Settings that decide the run's updates (not its time limit), and the data it trains on.
std::string classifier_settings(const ClassifierTrainConfig& cfg);
// Reads classifier_settings() back; moe::Error naming `where` on anything missing or malformed.
ClassifierTrainConfig parse_classifier_settings(const std::string& json, const std::string& where);
uint64_t image_set_fingerprint(const ImageSet& s);  // FNV-1a over sizes, pixels and labels

std::string classifier_state_path(const std::string& dir, int epoch);
void save_classifier_state(const std::string& dir, const AdamW& opt, const ClassifierState& st,
                           const ClassifierTrainConfig& cfg, uint64_t fingerprint);
// After the model of `epoch` is written: every other epoch's state goes.
void remove_other_classifier_states(const std::string& dir, int epoch);

// The epoch that DIR/model.safetensors was saved after (its "epoch" metadata); moe::Error when the
// model is not one that moe fit trained with a saved state.
int saved_classifier_epoch(const std::string& dir);

struct SavedClassifierState {
  ClassifierState state;
  std::string settings;   // as classifier_settings() wrote them
  uint64_t fingerprint = 0;
};
// Reads DIR's state for `epoch` and loads the moments into opt (checked: present, the right size,
// finite, second moments >= 0); moe::Error naming the file on anything wrong.
SavedClassifierState load_classifier_state(const std::string& dir, int epoch, AdamW& opt);

// The state a run saved in DIR goes on from, with its moments loaded into opt: moe::Error unless the
// state of the model's epoch is there and sound, cfg's settings and the training images are the ones
// it started with, and epochs are left to train.
ClassifierState resume_classifier_state(const std::string& dir, const ClassifierTrainConfig& cfg, const ImageSet& train,
                                        AdamW& opt);

}  // namespace moe::vision
