// The Open MPI transport of Communicator, and the job's world. Without MPI (MOE_WITH_MPI unset)
// the world is a single rank and running under mpirun is refused with a clear error by init_world.
#include <cstdlib>
#include <limits>
#include <mutex>

#include "core/error.h"
#include "dist/communicator.h"

#if MOE_WITH_MPI
#include <mpi.h>
#endif

namespace moe::dist {

#if MOE_WITH_MPI

namespace {

void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  throw Error(std::string("[mpi] ") + what + " failed: " + std::string(msg, size_t(len)));
}

int as_int(int64_t v, const char* what) {
  if (v < 0 || v > std::numeric_limits<int>::max())
    throw Error(std::string("[mpi] ") + what + ": " + std::to_string(v) + " bytes to one rank exceed MPI's 2 GiB message limit");
  return int(v);
}

class MpiComm final : public CommunicatorImpl {
 public:
  explicit MpiComm(MPI_Comm c, bool owned) : comm_(c), owned_(owned) {
    check(MPI_Comm_rank(c, &rank_), "MPI_Comm_rank");
    check(MPI_Comm_size(c, &size_), "MPI_Comm_size");
  }
  ~MpiComm() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (owned_ && !finalized) MPI_Comm_free(&comm_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string name() const override { return "mpi"; }

  void all_to_all_v(const void* send, const int64_t* sb, const int64_t* so, void* recv, const int64_t* rb,
                    const int64_t* ro) override {
    std::vector<int> isb(size_), iso(size_), irb(size_), iro(size_);
    for (int r = 0; r < size_; ++r) {
      isb[r] = as_int(sb[r], "all-to-all"), iso[r] = as_int(so[r], "all-to-all offset");
      irb[r] = as_int(rb[r], "all-to-all"), iro[r] = as_int(ro[r], "all-to-all offset");
    }
    check(MPI_Alltoallv(send, isb.data(), iso.data(), MPI_BYTE, recv, irb.data(), iro.data(), MPI_BYTE, comm_),
          "MPI_Alltoallv");
  }
  void all_gather(const void* send, int64_t bytes, void* recv) override {
    check(MPI_Allgather(send, as_int(bytes, "all-gather"), MPI_BYTE, recv, int(bytes), MPI_BYTE, comm_), "MPI_Allgather");
  }
  void broadcast(void* data, int64_t bytes, int root) override {
    check(MPI_Bcast(data, as_int(bytes, "broadcast"), MPI_BYTE, root, comm_), "MPI_Bcast");
  }
  void barrier() override { check(MPI_Barrier(comm_), "MPI_Barrier"); }
  std::shared_ptr<CommunicatorImpl> split(int color, int key) override {
    MPI_Comm c;
    check(MPI_Comm_split(comm_, color, key, &c), "MPI_Comm_split");
    check(MPI_Comm_set_errhandler(c, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
    return std::make_shared<MpiComm>(c, /*owned=*/true);
  }

 private:
  MPI_Comm comm_;
  bool owned_;
  int rank_ = 0, size_ = 1;
};

bool mpi_running() {
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  return init && !fin;
}

}  // namespace

int init_world(int* argc, char*** argv) {
  if (!launched_by_mpirun()) return 1;
  if (!mpi_running()) {
    int provided = 0;
    check(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    // Errors come back as codes (thrown as moe::Error) instead of aborting inside the library.
    check(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
    std::atexit([] {
      if (mpi_running()) MPI_Finalize();
    });
  }
  return Communicator::world().size();
}

Communicator Communicator::world() {
  static std::once_flag once;
  static std::shared_ptr<CommunicatorImpl> w;
  if (!mpi_running()) return Communicator();
  std::call_once(once, [] { w = std::make_shared<MpiComm>(MPI_COMM_WORLD, /*owned=*/false); });
  return Communicator(w);
}

#else  // no MPI in this build

int init_world(int*, char***) {
  if (launched_by_mpirun())
    throw Error("[dist] this moe was built without Open MPI (install libopenmpi-dev and rebuild) but runs under mpirun");
  return 1;
}

Communicator Communicator::world() { return Communicator(); }

#endif

}  // namespace moe::dist
