#include "sweep.hpp"

namespace pgferry {

struct Sweeper::Impl {};

Sweeper::Sweeper(const Config&, std::vector<StreamTable>, Control&) : impl_(std::make_unique<Impl>()) {}
Sweeper::~Sweeper() = default;
void Sweeper::start() {}
void Sweeper::stop() {}

}  // namespace pgferry
