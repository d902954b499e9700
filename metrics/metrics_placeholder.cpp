// Placeholder: replaced by the metrics library.
namespace pggw::metrics {}
