#include "client/src/rows.h"

#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>

#include "client/src/client_common.h"

namespace selu::client {

namespace {

void CheckRectangular(const Rows& rows) {
  if (rows.empty()) throw UsageError("no input rows");
  for (size_t r = 0; r < rows.size(); ++r) {
    if (rows[r].empty()) throw UsageError("row " + std::to_string(r) + " is empty");
    if (rows[r].size() != rows[0].size()) {
      throw UsageError("row " + std::to_string(r) + " has " + std::to_string(rows[r].size()) +
                       " values, row 0 has " + std::to_string(rows[0].size()));
    }
  }
}

std::vector<std::string> SplitCsvLine(const std::string& line) {
  std::vector<std::string> cells;
  std::stringstream in(line);
  std::string cell;
  while (std::getline(in, cell, ',')) {
    const size_t first = cell.find_first_not_of(" \t\r\"");
    const size_t last = cell.find_last_not_of(" \t\r\"");
    cells.push_back(first == std::string::npos ? "" : cell.substr(first, last - first + 1));
  }
  return cells;
}

bool ParseFloat(const std::string& cell, float* value) {
  if (cell.empty()) return false;
  size_t used = 0;
  try {
    *value = std::stof(cell, &used);
  } catch (const std::exception&) {
    return false;
  }
  return used == cell.size();
}

}  // namespace

Rows RowsFromJson(const std::string& text) {
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw UsageError(std::string("input is not valid JSON: ") + e.what());
  }
  if (!doc.is_array()) throw UsageError("JSON input must be an array of rows");
  if (!doc.empty() && doc[0].is_number()) doc = nlohmann::json::array({doc});
  Rows rows;
  for (size_t r = 0; r < doc.size(); ++r) {
    if (!doc[r].is_array()) throw UsageError("JSON row " + std::to_string(r) + " is not an array");
    std::vector<float> row;
    for (const auto& v : doc[r]) {
      if (!v.is_number()) {
        throw UsageError("JSON row " + std::to_string(r) + " holds a non-number: " + v.dump());
      }
      row.push_back(v.get<float>());
    }
    rows.push_back(std::move(row));
  }
  CheckRectangular(rows);
  return rows;
}

Rows RowsFromCsv(const std::string& text) {
  std::stringstream in(text);
  std::string line;
  Rows rows;
  std::vector<bool> keep;  // per column; from the header
  size_t line_number = 0;
  while (std::getline(in, line)) {
    ++line_number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const auto cells = SplitCsvLine(line);
    std::vector<float> row;
    bool numeric = true;
    for (size_t c = 0; c < cells.size(); ++c) {
      float v = 0;
      if (!ParseFloat(cells[c], &v)) {
        numeric = false;
        break;
      }
      if (keep.empty() || (c < keep.size() && keep[c])) row.push_back(v);
    }
    if (!numeric) {
      if (rows.empty() && keep.empty()) {  // the header
        for (const auto& name : cells) keep.push_back(name != "label");
        continue;
      }
      throw UsageError("CSV line " + std::to_string(line_number) + " holds a non-number");
    }
    if (!keep.empty() && cells.size() != keep.size()) {
      throw UsageError("CSV line " + std::to_string(line_number) + " has " +
                       std::to_string(cells.size()) + " cells, the header " +
                       std::to_string(keep.size()));
    }
    rows.push_back(std::move(row));
  }
  CheckRectangular(rows);
  return rows;
}

}  // namespace selu::client
